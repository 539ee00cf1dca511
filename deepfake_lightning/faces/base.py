"""What every face detector shares: the `FaceDetector` interface, its error and the downscale before detection.

Its own module so that the detectors (`centerface.py`, `haar.py`) and `build_detector` (`detector.py`), which
names them, build on it without importing one another in a loop."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from deepfake_lightning.faces.types import Face


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


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The image shrunk (INTER_AREA) so its longer side is at most `max_side`, and the (x, y) factors used
    (<= 1; divide a coordinate found in the small image by them to get the original's)."""
    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    if factor == 1.0:
        return image, (1.0, 1.0)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), (size[0] / width, size[1] / height)
