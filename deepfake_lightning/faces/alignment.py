"""Aligned face crops: a similarity transform (rotation, uniform scale, shift) that puts the 5 landmarks on a
canonical template, as DeepfakeBench and the FaceForensics++ pipelines do, or a square box crop when there are
no landmarks (Haar) or `mode="box"` is asked for.

`scale` is the context around the face, as DeepfakeBench's 1.3: the template is shrunk about the crop's centre by
1/scale, so at 1.3 the face takes 1/1.3 of the crop's side and the rest is surroundings. Both modes are one
`cv2.warpAffine` with bilinear sampling and black outside the image, so the same image and face always give
the same pixels, and the 2x3 matrix is returned to map crop pixels back to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepfake_lightning.faces.types import ALIGN_MODES, Face

# The 5 points in a tight square face crop, as fractions of its side (x, y), LANDMARK_NAMES order: the
# InsightFace/ArcFace 112-px reference, made left-right symmetric and rounded to 0.01.
TEMPLATE = np.array([[0.34, 0.46], [0.66, 0.46], [0.50, 0.64], [0.37, 0.82], [0.63, 0.82]], dtype=np.float64)


def template_points(size: int, scale: float) -> np.ndarray:
    """TEMPLATE placed in a `size` px crop with `scale` context: shrunk by 1/scale about the centre."""
    return ((TEMPLATE - 0.5) / scale + 0.5) * size


def landmark_matrix(landmarks: np.ndarray, size: int, scale: float) -> np.ndarray:
    """The 2x3 least-squares similarity transform taking the 5 landmarks onto the template.

    OpenCV's RANSAC with an unbounded inlier distance keeps all five points, and its final refinement is the
    least-squares fit (the Umeyama solution skimage's SimilarityTransform gives, to 1e-5 px).
    """
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    matrix, _ = cv2.estimateAffinePartial2D(
        src, template_points(size, scale), method=cv2.RANSAC, ransacReprojThreshold=1e9, refineIters=50
    )
    if matrix is None or not np.all(np.isfinite(matrix)):
        raise ValueError(f"landmarks {src.tolist()}: no similarity transform fits them (degenerate points)")
    return matrix


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """N x 2 image points (x, y) -> where the 2x3 `matrix` (an `Alignment.crop`'s) puts them in the crop: the
    same transform `cv2.warpAffine` applies to the pixels, so a landmark lands on its feature in the crop."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return xy @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def box_matrix(box: tuple[float, float, float, float], size: int, scale: float) -> np.ndarray:
    """The 2x3 scale-and-shift taking a square of side max(w, h) * scale, centred on the box, to the crop."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0) * scale
    factor = size / side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[factor, 0.0, size / 2 - factor * cx], [0.0, factor, size / 2 - factor * cy]])


@dataclass(frozen=True)
class Alignment:
    """How a face becomes a crop: `mode` (landmarks, falling back to box without them; or box), `scale`
    (context, >= 1; 1.3 as DeepfakeBench) and `size` (the crop's side in px; 256 as DeepfakeBench)."""

    mode: str = "landmarks"
    scale: float = 1.3
    size: int = 256

    def __post_init__(self) -> None:
        if self.mode not in ALIGN_MODES:
            raise ValueError(f"face alignment mode={self.mode!r}: expected one of {list(ALIGN_MODES)}")
        if not 1.0 <= self.scale <= 4.0:
            raise ValueError(f"face alignment scale={self.scale}: expected a number in [1, 4]")
        if not 16 <= self.size <= 2048:
            raise ValueError(f"face alignment size={self.size}: expected an integer in [16, 2048]")

    def method(self, face: Face) -> str:
        """Which transform `face` gets: "landmarks" or "box"."""
        return "landmarks" if self.mode == "landmarks" and face.landmarks is not None else "box"

    def matrix(self, face: Face) -> np.ndarray:
        if self.method(face) == "landmarks":
            return landmark_matrix(face.landmarks, self.size, self.scale)  # type: ignore[arg-type]
        return box_matrix(face.box, self.size, self.scale)

    def landmarks_in_crop(self, face: Face) -> np.ndarray | None:
        """The face's 5 landmarks in the pixel coordinates of its crop (`map_points` through `matrix(face)`),
        or None for a face without landmarks (Haar). The matrix depends on the face alone, not on the image."""
        return None if face.landmarks is None else map_points(self.matrix(face), face.landmarks)

    def crop(
        self, image: np.ndarray, face: Face, border: int = cv2.BORDER_CONSTANT
    ) -> tuple[np.ndarray, np.ndarray]:
        """(size x size x 3 uint8 crop, its 2x3 image->crop matrix). `border`: what fills the crop where it
        reaches outside the image; black (the crop every consumer uses) unless a caller asks otherwise."""
        matrix = self.matrix(face)
        crop = cv2.warpAffine(
            image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=border
        )
        return crop, matrix

    def inside(self, shape: tuple[int, ...], face: Face) -> np.ndarray:
        """size x size bool: the crop pixels sampled from the image alone (their bilinear footprint inside it),
        so they are the same whatever `border` fills the rest."""
        ones = np.full(shape[:2], 255, np.uint8)
        warped = cv2.warpAffine(
            ones,
            self.matrix(face),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        return warped == 255


def align_face(
    image: np.ndarray, face: Face, mode: str = "landmarks", scale: float = 1.3, size: int = 256
) -> np.ndarray:
    """One face of an RGB image -> its aligned `size` px crop (see `Alignment`)."""
    return Alignment(mode, scale, size).crop(image, face)[0]
