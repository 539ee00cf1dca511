"""`build_detector(name)`, the one way to a face detector (the interface is `base.FaceDetector`): every consumer
(predict, predict_video, the service, the data module, `prepare`) gets its detector here, so they all find the
same faces."""

from __future__ import annotations

from typing import Any

from deepfake_lightning.faces.base import FaceDetector, FaceDetectorError
from deepfake_lightning.faces.centerface import CenterFaceDetector
from deepfake_lightning.faces.haar import HaarDetector

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "FaceDetector", "FaceDetectorError", "build_detector"]

DETECTORS = ("centerface", "haar")
DEFAULT_DETECTOR = "centerface"


def build_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> FaceDetector:
    """`centerface` (CNN, 5 landmarks; options: threshold, nms_iou, detect_side, backend, model_path) or `haar`
    (OpenCV's cascade, no landmarks; options: min_face, detect_side, cascade)."""
    if name == "centerface":
        return CenterFaceDetector(**options)
    if name == "haar":
        return HaarDetector(**options)
    raise ValueError(f"face detector {name!r}: expected one of {list(DETECTORS)}")
