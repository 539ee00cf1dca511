"""OpenCV's Haar cascade (ships inside the opencv wheel: no download): the fallback detector, and the
baseline the CNN is compared with. It finds upright frontal faces only and gives no landmarks, so its faces are
cropped by box, never aligned. OpenCV 5 removed the cascades from its wheels, hence `opencv-python-headless<5`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lightning.faces.base import FaceDetectorError, downscale
from deepfake_lightning.faces.types import Face

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier"):
        raise FaceDetectorError(
            f"OpenCV {cv2.__version__} has no Haar cascades; face_detector=haar needs "
            "opencv-python-headless<5 (pip install 'opencv-python-headless<5')"
        )
    return Path(folder) / name


class HaarDetector:
    """Faces of at least `min_face` px, searched on a copy shrunk to `detect_side` px; most votes first, then
    largest.

    The cascade has no calibrated confidence: `score` is the number of overlapping raw detections merged into
    the face (OpenCV's `numDetections`), divided by 10 and capped at 1, so more votes rank higher.
    Picklable: the classifier is built lazily in each process.
    """

    name = "haar"
    has_landmarks = False

    def __init__(self, min_face: int = 24, detect_side: int = 640, cascade: str = DEFAULT_CASCADE) -> None:
        if min_face < 1 or detect_side < 32:
            raise ValueError(f"haar: min_face={min_face} (>= 1), detect_side={detect_side} (>= 32) expected")
        self.min_face = min_face
        self.detect_side = detect_side
        self.path = cascade_path(cascade)
        if not self.path.is_file():
            raise FaceDetectorError(f"{self.path}: Haar cascade not found in this OpenCV install")
        self._classifier: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_classifier": None}

    def _cascade(self) -> Any:
        if self._classifier is None:
            classifier = cv2.CascadeClassifier(str(self.path))
            if classifier.empty():
                raise FaceDetectorError(f"{self.path}: OpenCV could not load the Haar cascade")
            self._classifier = classifier
        return self._classifier

    def detect(self, image: np.ndarray) -> list[Face]:
        small, (fx, fy) = downscale(image, self.detect_side)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(8, round(self.min_face * min(fx, fy)))
        boxes, votes = self._cascade().detectMultiScale2(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        faces = [
            Face((x / fx, y / fy, (x + w) / fx, (y + h) / fy), min(1.0, int(n) / 10), None)
            for (x, y, w, h), n in zip(boxes, np.ravel(votes), strict=True)
        ]
        return sorted(faces, key=lambda face: (-face.score, -face.area))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "min_face": self.min_face, "detect_side": self.detect_side}
