"""Optional face crop with OpenCV's bundled Haar cascade (ships inside the opencv wheel: no download).

Detectors trained on face crops score a whole holiday photo poorly; cropping the largest face first fixes
that. When no face is found the full image is used and the caller records it, so nothing is silently dropped.
OpenCV 5 removed the cascades from its wheels, hence `opencv-python-headless<5` in pyproject.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
FACE_FOUND = "found"
FACE_NOT_FOUND = "not_found"


class FaceDetectorError(RuntimeError):
    """The cascade file cannot be loaded (missing from this OpenCV build)."""


def cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier"):
        raise FaceDetectorError(
            f"OpenCV {cv2.__version__} has no Haar cascades; face_crop needs opencv-python-headless<5 "
            "(pip install 'opencv-python-headless<5')"
        )
    return Path(folder) / name


class FaceCropper:
    """`crop(image) -> (image, "found" | "not_found")`: the largest face, grown by `margin`, made square.

    Picklable for DataLoader workers: the OpenCV classifier is built lazily in each process.
    """

    def __init__(
        self, margin: float = 0.3, min_face: int = 24, detect_side: int = 640, cascade: str = DEFAULT_CASCADE
    ) -> None:
        if margin < 0:
            raise ValueError(f"face crop margin={margin}: expected >= 0")
        self.margin = margin
        self.min_face = min_face
        self.detect_side = detect_side
        self.path = cascade_path(cascade)
        if not self.path.is_file():
            raise FaceDetectorError(f"{self.path}: Haar cascade not found in this OpenCV install")
        self._classifier: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_classifier": None}

    def _detector(self) -> Any:
        if self._classifier is None:
            classifier = cv2.CascadeClassifier(str(self.path))
            if classifier.empty():
                raise FaceDetectorError(f"{self.path}: OpenCV could not load the Haar cascade")
            self._classifier = classifier
        return self._classifier

    def find_face(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the largest face in full-resolution coordinates; detection runs on a downscaled copy."""
        height, width = image.shape[:2]
        scale = min(1.0, self.detect_side / max(height, width))
        small = (
            image
            if scale == 1.0
            else cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        )
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(8, round(self.min_face * scale))
        faces = self._detector().detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
        return round(x / scale), round(y / scale), round(w / scale), round(h / scale)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, str]:
        box = self.find_face(image)
        if box is None:
            return image, FACE_NOT_FOUND
        x, y, w, h = box
        side = round(max(w, h) * (1 + 2 * self.margin))
        cx, cy = x + w / 2, y + h / 2
        height, width = image.shape[:2]
        left = int(max(0, min(cx - side / 2, width - side)))
        top = int(max(0, min(cy - side / 2, height - side)))
        crop = image[top : top + side, left : left + side]
        return np.ascontiguousarray(crop), FACE_FOUND
