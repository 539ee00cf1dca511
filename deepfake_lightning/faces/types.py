"""`Face`: what every face detector returns, one per face found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ALIGN_MODES = ("landmarks", "box")  # onto the 5-point template (box without landmarks) | always a box crop
# The order of the five landmarks (as seen in the image: "left" is the viewer's left).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image given to the detector.

    `box` is (x1, y1, x2, y2); `landmarks` a 5x2 float array of (x, y) in `LANDMARK_NAMES` order, or None for
    a detector without landmarks (Haar).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: box rounded to 0.1 px, score to 4 decimals, landmarks as [[x, y], ...] or null."""
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": None
            if self.landmarks is None
            else [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
        }
