"""`FacePipeline`: one detector + one alignment, the unit every consumer shares and a model bundle records.

    pipeline = FacePipeline.from_spec({"detector": "centerface", "alignment": "landmarks", "scale": 1.3, "size": 256})
    for crop in pipeline.crops(rgb):          # every face, best score first
        crop.image, crop.face.box, crop.method

`spec()` is the JSON-ready record of everything that decides the crops (detector and its thresholds, alignment,
scale, size), and `from_spec()` rebuilds the same pipeline from it: training writes it into the bundle and
inference rebuilds it from there, so both crop the same way. The runtime (ONNX Runtime or OpenCV) is not part
of it: both give the same faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfake_lightning.faces.alignment import Alignment
from deepfake_lightning.faces.base import FaceDetector
from deepfake_lightning.faces.detector import DEFAULT_DETECTOR, build_detector
from deepfake_lightning.faces.types import Face

FACE_FOUND = "found"
FACE_NOT_FOUND = "not_found"
# Detector options that change which faces are found (recorded in the spec); others (backend, threads) do not.
SPEC_OPTIONS = {"centerface": ("threshold", "nms_iou", "detect_side"), "haar": ("min_face", "detect_side")}


@dataclass(frozen=True)
class FaceCrop:
    """One face and its crop: `image` (size x size x 3 uint8), `matrix` (2x3, image -> crop), `method`
    ("landmarks" when aligned on them, else "box")."""

    face: Face
    image: np.ndarray
    matrix: np.ndarray
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.face.to_dict(), "alignment": self.method}


class FacePipeline:
    """Detect, then crop each face with `alignment`; picklable (the detector builds its runtime lazily)."""

    def __init__(
        self,
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        alignment: Alignment | None = None,
        max_faces: int | None = None,
        **detector_options: Any,
    ) -> None:
        self.detector = (
            build_detector(detector, **detector_options) if isinstance(detector, str) else detector
        )
        self.alignment = alignment or Alignment()
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces={max_faces}: expected >= 1 or None (every face)")
        self.max_faces = max_faces

    @classmethod
    def from_spec(cls, spec: dict[str, Any], max_faces: int | None = None, **runtime: Any) -> FacePipeline:
        """The pipeline a `spec()` describes. `max_faces` (how many faces, best first; None: all) and `runtime`
        (backend, threads) change how many faces are used or how fast, not how each is cropped."""
        unknown = set(spec) - {"detector", "alignment", "scale", "size", *_all_options()}
        if unknown:
            raise ValueError(f"face pipeline spec: unknown keys {sorted(unknown)}")
        name = spec.get("detector", DEFAULT_DETECTOR)
        options = {key: spec[key] for key in SPEC_OPTIONS.get(name, ()) if key in spec}
        alignment = Alignment(
            spec.get("alignment", "landmarks"), spec.get("scale", 1.3), spec.get("size", 256)
        )
        return cls(name, alignment, max_faces, **options, **runtime)

    def spec(self) -> dict[str, Any]:
        """What decides each crop: the detector (and its thresholds), alignment, scale, size; JSON-ready."""
        described = self.detector.describe()
        options = {
            key: described[key] for key in SPEC_OPTIONS.get(self.detector.name, ()) if key in described
        }
        return {
            "detector": self.detector.name,
            **options,
            "alignment": self.alignment.mode,
            "scale": self.alignment.scale,
            "size": self.alignment.size,
        }

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self.detector.detect(image)
        return faces if self.max_faces is None else faces[: self.max_faces]

    def crop(self, image: np.ndarray, face: Face) -> FaceCrop:
        crop, matrix = self.alignment.crop(image, face)
        return FaceCrop(face, crop, matrix, self.alignment.method(face))

    def crops(self, image: np.ndarray, faces: list[Face] | None = None) -> list[FaceCrop]:
        """Every face's crop, best first; `faces` reuses detections made earlier (a cache)."""
        found = self.detect(image) if faces is None else faces
        return [self.crop(image, face) for face in found]

    def largest(self, image: np.ndarray, faces: list[Face] | None = None) -> FaceCrop | None:
        """The crop of the largest face (the subject of a photo or frame), or None when there is no face."""
        found = self.detect(image) if faces is None else faces
        return self.crop(image, max(found, key=lambda face: face.area)) if found else None


def _all_options() -> set[str]:
    return {key for keys in SPEC_OPTIONS.values() for key in keys}
