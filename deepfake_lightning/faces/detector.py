"""The one face-detector interface, and `build_detector(name)`: every consumer (predict, predict_video, the
service, the data module, `prepare`) gets its detector here, so they all find the same faces."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepfake_lightning.faces.types import Face

DETECTORS = ("centerface", "haar")
DEFAULT_DETECTOR = "centerface"


class FaceDetectorError(RuntimeError):
    """A detector cannot run (model file missing or unreadable, OpenCV without cascades...)."""


@runtime_checkable
class FaceDetector(Protocol):
    """`detect(rgb uint8 HxWx3) -> [Face]`, best score first, boxes and landmarks in that image's pixels.

    Implementations are picklable (DataLoader workers, process pools): native handles are built lazily.
    """

    name: str
    has_landmarks: bool

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def describe(self) -> dict[str, Any]: ...


def build_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> FaceDetector:
    """`centerface` (CNN, 5 landmarks; options: threshold, nms_iou, detect_side, backend, model_path) or `haar`
    (OpenCV's cascade, no landmarks; options: min_face, detect_side, cascade)."""
    if name == "centerface":
        from deepfake_lightning.faces.centerface import CenterFaceDetector

        return CenterFaceDetector(**options)
    if name == "haar":
        from deepfake_lightning.faces.haar import HaarDetector

        return HaarDetector(**options)
    raise ValueError(f"face detector {name!r}: expected one of {list(DETECTORS)}")


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The image shrunk (INTER_AREA) so its longer side is at most `max_side`, and the (x, y) factors used
    (<= 1; divide a coordinate found in the small image by them to get the original's)."""
    import cv2

    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    if factor == 1.0:
        return image, (1.0, 1.0)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), (size[0] / width, size[1] / height)
