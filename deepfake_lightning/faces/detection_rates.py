"""`python -m deepfake_lightning.faces.detection_rates`: how often each detector finds the face, and how often
it finds one where there is none. Counts, not timings: any machine gives the same figures.

- Face detection rate on real face photos: every `real/` image of the shared sets (`--data`, default
  `../shared/data`: FFHQ 256 px aligned portraits, LFW 250 px news photos, DFDC 224 px video face crops). An
  image counts as found when the detector returns at least one face.
- False detections on non-face images, three sources (all in the package or generated, so anyone can rerun):
  `lfw_subset`: the 100 non-face patches of `skimage.data.lfw_subset()` (25 x 25 px crops of LFW photo
  backgrounds, the hardest negatives here: same photos as the faces), upscaled to 250 px like an LFW image;
  `skimage_photos`: every photo bundled with scikit-image that shows no person (23);
  `generated`: 50 seeded 640 x 480 images (uniform, Gaussian and smoothed noise, gradients, stripes, checks,
  random shapes). A false detection is an image with at least one face reported.

Writes `detection_rates.json` and `detection_rates.md` (a table per part) to `--out`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lightning.faces.detector import FaceDetector, build_detector

log = logging.getLogger(__name__)
REAL_SETS = ("ffhq_stylegan", "lfw_faceswap", "dfdc_faces")
# skimage.data loaders bundled in the wheel whose images show no person (astronaut and camera do)
SKIMAGE_PHOTOS = (
    "brick", "cell", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
    "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina",
    "rocket", "shepp_logan_phantom", "text", "binary_blobs", "stereo_motorcycle",
)  # fmt: skip
GOAL_RATE = 0.99


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype == bool:
        image = image.astype(np.float64)
    if image.dtype != np.uint8:
        image = (
            (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
            if image.max() <= 1
            else image.astype(np.uint8)
        )
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def skimage_photos() -> Iterator[tuple[str, np.ndarray]]:
    from skimage import data

    for name in SKIMAGE_PHOTOS:
        image = getattr(data, name)()
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        yield name, _rgb(image)


def lfw_non_faces() -> Iterator[tuple[str, np.ndarray]]:
    from skimage import data

    patches = data.lfw_subset()[100:]  # the first 100 are faces, the last 100 are not
    for i, patch in enumerate(patches):
        yield (
            f"lfw_subset_nonface_{i:03d}",
            cv2.resize(_rgb(patch), (250, 250), interpolation=cv2.INTER_CUBIC),
        )


def generated(count: int = 50, seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    kinds = ("uniform", "gaussian", "smooth", "gradient", "stripes", "checks", "shapes")
    for i in range(count):
        kind = kinds[i % len(kinds)]
        yield f"{kind}_{i:02d}", _pattern(kind, rng)


def _pattern(kind: str, rng: np.random.Generator, height: int = 480, width: int = 640) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "gaussian":
        return np.clip(rng.normal(128, 45, (height, width, 3)), 0, 255).astype(np.uint8)
    if kind == "smooth":
        noise = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(3, 20)))
        return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, np.pi)
        ramp = (xx * np.cos(angle) + yy * np.sin(angle)) / (width + height)
        colours = rng.uniform(0, 255, (2, 3))
        return (colours[0] + (colours[1] - colours[0]) * ramp[..., None] % 1).astype(np.uint8)
    if kind == "stripes":
        period = rng.uniform(6, 60)
        wave = 127.5 * (1 + np.sin(2 * np.pi * (xx * rng.uniform(-1, 1) + yy) / period))
        return np.repeat(wave[..., None], 3, axis=2).astype(np.uint8)
    if kind == "checks":
        cell = int(rng.integers(8, 80))
        board = ((xx // cell + yy // cell) % 2 * 255).astype(np.uint8)
        return np.repeat(board[..., None], 3, axis=2)
    image = np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    for _ in range(20):  # random ellipses and rectangles
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            axes = (int(rng.integers(10, 120)), int(rng.integers(10, 120)))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            corner = (centre[0] + int(rng.integers(10, 150)), centre[1] + int(rng.integers(10, 150)))
            cv2.rectangle(image, centre, corner, colour, -1)
    return image


def _count(detector: FaceDetector, images: Iterator[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Images with at least one face reported, and the names of those with and without."""
    found, empty = [], []
    for name, image in images:
        (found if detector.detect(image) else empty).append(name)
    total = len(found) + len(empty)
    return {"images": total, "with_a_face": len(found), "rate": len(found) / total if total else None,
            "found": found, "empty": empty}  # fmt: skip


def _reals(folder: Path, limit: int | None) -> Iterator[tuple[str, np.ndarray]]:
    from deepfake_lightning.data.images import load_rgb

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for path in files[:limit]:
        yield path.name, load_rgb(path)


NON_FACE_SOURCES = ("lfw_subset", "skimage_photos", "generated")


def detection_rates(
    data: Path,
    detectors: list[str],
    limit: int | None = None,
    sources: tuple[str, ...] = NON_FACE_SOURCES,
    n_generated: int = 50,
) -> dict[str, Any]:
    """Counts per real set and per non-face source, for each detector (see the module docstring)."""
    built = {name: build_detector(name) for name in detectors}
    result: dict[str, Any] = {"real_photos": {}, "non_face_images": {}, "detectors": {}}
    for name, detector in built.items():
        result["detectors"][name] = detector.describe()
    for dataset in REAL_SETS:
        folder = data / dataset / "real"
        if not folder.is_dir():
            log.warning("%s not found: skipped", folder)
            continue
        for name, detector in built.items():
            counts = _count(detector, _reals(folder, limit))
            counts["missed"] = counts.pop("empty")
            del counts["found"]
            result["real_photos"].setdefault(dataset, {})[name] = counts
            log.info("%s %s: %d/%d", dataset, name, counts["with_a_face"], counts["images"])
    generators: dict[str, Callable[[], Iterator[tuple[str, np.ndarray]]]] = {
        "lfw_subset": lfw_non_faces,
        "skimage_photos": skimage_photos,
        "generated": lambda: generated(n_generated),
    }
    for source in sources:
        images = generators[source]
        for name, detector in built.items():
            counts = _count(detector, images())
            counts["false_detections"] = counts.pop("found")
            del counts["empty"]
            result["non_face_images"].setdefault(source, {})[name] = counts
            log.info("%s %s: %d/%d false", source, name, counts["with_a_face"], counts["images"])
    return result


def _table(title: str, first: str, counts: dict[str, Any], cell: Any, detectors: list[str]) -> list[str]:
    """One Markdown section: a row per set (or source) with its image count and one cell per detector."""
    lines = [f"## {title}", "", f"| {first} | images | " + " | ".join(detectors) + " |"]
    lines.append("|---|---|" + "---|" * len(detectors))
    for name, by_detector in counts.items():
        n = next(iter(by_detector.values()))["images"]
        lines.append(f"| {name} | {n} | " + " | ".join(cell(c) for c in by_detector.values()) + " |")
    return lines


def _found_rate(counts: dict[str, Any]) -> str:
    return f"{counts['with_a_face']} ({counts['rate']:.2%})"


def _found(counts: dict[str, Any]) -> str:
    return f"{counts['with_a_face']}"


def markdown(result: dict[str, Any]) -> str:
    detectors = list(result["detectors"])
    lines = [
        "# Face detection rates",
        "",
        "Counts from `python -m deepfake_lightning.faces.detection_rates` (the module's docstring says where every",
        "image comes from). Detectors: "
        + "; ".join(f"`{name}` {json.dumps(spec)}" for name, spec in result["detectors"].items()),
        "",
    ]
    title = f"Real face photos: images with a face found (goal for centerface: >= {GOAL_RATE:.0%})"
    lines += _table(title, "set", result["real_photos"], _found_rate, detectors)
    title = "Non-face images: images with a face reported (false detections; lower is better)"
    lines += ["", *_table(title, "source", result["non_face_images"], _found, detectors)]
    lines += ["", "Misses and false detections by file name are in detection_rates.json.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deepfake_lightning.faces.detection_rates", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder of the shared sets")
    parser.add_argument("--out", type=Path, default=Path("experiments/face_detection"), help="output folder")
    parser.add_argument("--detectors", nargs="+", default=["centerface", "haar"], help="centerface haar")
    parser.add_argument("--limit", type=int, default=None, help="at most this many real photos per set")
    parser.add_argument(
        "--non-faces", nargs="*", default=list(NON_FACE_SOURCES), help=" ".join(NON_FACE_SOURCES)
    )
    parser.add_argument("--generated", type=int, default=50, help="how many generated non-face images (50)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = detection_rates(args.data, args.detectors, args.limit, tuple(args.non_faces), args.generated)
    if not result["real_photos"]:
        print(f"detection_rates: no real/ folder of {list(REAL_SETS)} under {args.data}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection_rates.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "detection_rates.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
