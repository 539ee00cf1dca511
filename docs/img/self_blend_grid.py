"""Draw docs/img/self_blend.png: real faces of the shared sets beside their self-blended fakes.

    python docs/img/self_blend_grid.py [docs/img/self_blend.png]
    python docs/img/self_blend_grid.py --aligned [docs/img/self_blend_aligned.png]

Two real images per set (ffhq_stylegan, dfdc_faces, lfw_faceswap under ../shared/data), each blended with the
`SelfBlender` a training run builds from that set's experiment config (`data.self_blend` of
conf/experiment/NAME.yaml) and a fixed seed. The mask comes from the image's 5 CenterFace landmarks
(`landmarks_for`, as `data.self_blend.mask=landmarks` does). Columns: the real image, the self-blend (label 1), its
mask (white = the source copy at full weight; red dots: the landmarks), |blend - real| x4, and the face-box ellipse
mask the same seed gives (`mask=face_box`, and the fallback where no face is found). A 256-colour PNG, to stay
small.

`--aligned` draws the same on aligned face crops (`data.face_crop.enabled=true`), as a training run makes them:
the photo's largest CenterFace face cut by the face pipeline of the aligned benchmark rows (experiments/
cross_dataset/run.sh: dfdc_faces scale 1.0, 224 px; lfw_faceswap scale 1.3, 176 px) through `FaceCropper`, the
mask from the landmarks mapped into the crop (`FaceCropper.crop_landmarks`). Columns: the photo (the crop's
outline in green), the aligned real crop, its self-blend, the mask with the mapped landmarks, |blend - real| x4.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from deepfake_lightning.data.face_crops import FaceCropper
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.self_blend import SelfBlender
from deepfake_lightning.faces import Alignment, FacePipeline, landmarks_for

REPO = Path(__file__).resolve().parents[2]
SETS = ("ffhq_stylegan", "dfdc_faces", "lfw_faceswap")
PICKS = (3, 11)  # positions in each set's sorted real/ folder
TILE, LABEL = 128, 16
COLUMNS = ("real", "self-blend (fake)", "mask: landmarks", "|blend - real| x4", "mask: face box")
ALIGNED = {"dfdc_faces": (1.0, 224), "lfw_faceswap": (1.3, 176)}  # (scale, size) of run.sh's aligned rows
ALIGNED_COLUMNS = (
    "photo",
    "aligned real crop",
    "self-blend (fake)",
    "mask: mapped landmarks",
    "|blend - real| x4",
)


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


def _reals(name: str) -> list[Path]:
    reals = sorted((REPO.parent / "shared" / "data" / name / "real").glob("*.jpg"))
    return [reals[p] for p in PICKS]


def aligned_tiles(
    photo: np.ndarray, cropper: FaceCropper, path: str, blender: SelfBlender, seed: int
) -> list:
    """The photo with the crop's outline, and the aligned crop's real / blend / mask / difference tiles."""
    face = cropper.faces[path]
    assert face is not None, f"{path}: no face found; pick another image"
    real, matrix = cropper.alignment.crop(photo, face)
    marks = cropper.crop_landmarks(path)
    blended, mask = blender(real, seed, marks, cropper.reflected(path, photo))  # as SelfBlendDataset does
    outlined = photo.copy()
    side = cropper.alignment.size
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float64)
    inverse = cv2.invertAffineTransform(matrix)
    outline = np.round(corners @ inverse[:, :2].T + inverse[:, 2]).astype(np.int32)
    cv2.polylines(outlined, [outline], True, (0, 255, 0), max(1, photo.shape[0] // 100))
    with_points = _grey(mask)
    for x, y in np.round(marks).astype(int) if marks is not None else []:
        with_points[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = (255, 0, 0)
    difference = np.clip(np.abs(blended.astype(np.int16) - real.astype(np.int16)) * 4, 0, 255).astype(
        np.uint8
    )
    images = (outlined, real, blended, with_points, difference)
    return [Image.fromarray(a).resize((TILE, TILE), Image.LANCZOS) for a in images]


def aligned_rows() -> list[tuple[str, list]]:
    rows = []
    for name, (scale, size) in ALIGNED.items():
        pipeline = FacePipeline("centerface", Alignment("landmarks", scale, size))
        cropper, blender = FaceCropper(pipeline.alignment), blender_for(name)
        for i, path in enumerate(_reals(name)):
            photo = load_rgb(path)
            faces = pipeline.detect(photo)  # as data.face_crop at setup: the largest face
            cropper.faces[str(path)] = max(faces, key=lambda face: face.area) if faces else None
            caption = f"{name}: {path.name} (scale {scale}, {size} px)"
            rows.append((caption, aligned_tiles(photo, cropper, str(path), blender, i)))
    return rows


def main(out: Path, aligned: bool = False) -> Path:
    rows = []
    columns = ALIGNED_COLUMNS if aligned else COLUMNS
    if aligned:
        rows = aligned_rows()
    for name in () if aligned else SETS:
        picked = _reals(name)
        blender = blender_for(name)
        for i, (path, marks) in enumerate(zip(picked, landmarks_for(picked, load=load_rgb), strict=True)):
            rows.append((f"{name}: {path.name}", tiles(load_rgb(path), blender, i, marks)))
    width = TILE * len(columns)
    sheet = Image.new("RGB", (width, LABEL + len(rows) * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(columns):
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
    arguments = [a for a in sys.argv[1:] if a != "--aligned"]
    on_crops = "--aligned" in sys.argv[1:]
    default = REPO / "docs" / "img" / ("self_blend_aligned.png" if on_crops else "self_blend.png")
    main(Path(arguments[0]) if arguments else default, on_crops)
