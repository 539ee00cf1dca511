"""Draw docs/img/self_blend.png: real faces of the shared sets beside their self-blended fakes.

    python docs/img/self_blend_grid.py [docs/img/self_blend.png]

Two real images per set (ffhq_stylegan, dfdc_faces, lfw_faceswap under ../shared/data), each blended with the
`SelfBlender` a training run builds from that set's experiment config (`data.self_blend` of
conf/experiment/NAME.yaml) and a fixed seed. The mask comes from the image's 5 CenterFace landmarks
(`landmarks_for`, as `data.self_blend.mask=landmarks` does). Columns: the real image, the self-blend (label 1), its
mask (white = the source copy at full weight; red dots: the landmarks), |blend - real| x4, and the face-box ellipse
mask the same seed gives (`mask=face_box`, and the fallback where no face is found). A 256-colour PNG, to stay
small.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.self_blend import SelfBlender
from deepfake_lightning.faces import landmarks_for

REPO = Path(__file__).resolve().parents[2]
SETS = ("ffhq_stylegan", "dfdc_faces", "lfw_faceswap")
PICKS = (3, 11)  # positions in each set's sorted real/ folder
TILE, LABEL = 128, 16
COLUMNS = ("real", "self-blend (fake)", "mask: landmarks", "|blend - real| x4", "mask: face box")


def blender_for(name: str) -> SelfBlender:
    settings = dict(OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "data" / "_base.yaml").self_blend))
    experiment = OmegaConf.load(REPO / "conf" / "experiment" / f"{name}.yaml")
    settings.update(OmegaConf.to_container(experiment.data.get("self_blend", {})))
    for key in ("val_fakes", "mask"):
        settings.pop(key)
    return SelfBlender(**settings)


def _grey(mask: np.ndarray) -> np.ndarray:
    return np.repeat((mask[..., None] * 255).astype(np.uint8), 3, axis=2)


def tiles(real: np.ndarray, blender: SelfBlender, seed: int, marks: np.ndarray) -> list[Image.Image]:
    found = bool(np.isfinite(marks).all())
    blended, mask = blender(real, seed, marks if found else None)
    difference = np.abs(blended.astype(np.int16) - real.astype(np.int16)) * 4
    with_points = _grey(mask)
    for x, y in marks.astype(int) if found else []:
        with_points[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = (255, 0, 0)
    ellipse = _grey(blender(real, seed)[1])
    images = (real, blended, with_points, np.clip(difference, 0, 255).astype(np.uint8), ellipse)
    return [Image.fromarray(a).resize((TILE, TILE), Image.LANCZOS) for a in images]


def main(out: Path) -> Path:
    rows = []
    for name in SETS:
        reals = sorted((REPO.parent / "shared" / "data" / name / "real").glob("*.jpg"))
        picked = [reals[p] for p in PICKS]
        blender = blender_for(name)
        for i, (path, marks) in enumerate(zip(picked, landmarks_for(picked), strict=True)):
            rows.append((f"{name}: {path.name}", tiles(load_rgb(path), blender, i, marks)))
    width = TILE * len(COLUMNS)
    sheet = Image.new("RGB", (width, LABEL + len(rows) * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(COLUMNS):
        draw.text((c * TILE + 4, 2), title, fill="black")
    for r, (caption, images) in enumerate(rows):
        top = LABEL + r * (TILE + LABEL)
        draw.text((4, top + 2), caption, fill="black")
        for c, image in enumerate(images):
            sheet.paste(image, (c * TILE, top + LABEL))
    sheet.quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB")
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img" / "self_blend.png")
