"""`FaceCropper`: the largest Haar face grown by a margin (the behaviour `face_crop=true` had before the
`deepfake_lightning.faces` package); kept until every consumer runs on `FacePipeline`."""

from __future__ import annotations

import numpy as np

from deepfake_lightning.faces.detector import FaceDetectorError
from deepfake_lightning.faces.haar import DEFAULT_CASCADE, HaarDetector, cascade_path
from deepfake_lightning.faces.pipeline import FACE_FOUND, FACE_NOT_FOUND

__all__ = ["FACE_FOUND", "FACE_NOT_FOUND", "FaceCropper", "FaceDetectorError", "cascade_path"]


class FaceCropper:
    """`crop(image) -> (image, "found" | "not_found")`: the largest face, grown by `margin`, made square."""

    def __init__(
        self, margin: float = 0.3, min_face: int = 24, detect_side: int = 640, cascade: str = DEFAULT_CASCADE
    ) -> None:
        if margin < 0:
            raise ValueError(f"face crop margin={margin}: expected >= 0")
        self.margin = margin
        self.detector = HaarDetector(min_face, detect_side, cascade)

    def find_face(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the largest face in full-resolution coordinates."""
        faces = self.detector.detect(image)
        if not faces:
            return None
        x1, y1, x2, y2 = max(faces, key=lambda face: face.area).box
        return round(x1), round(y1), round(x2 - x1), round(y2 - y1)

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
