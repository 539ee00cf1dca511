"""Faces: one detector interface (CenterFace with 5 landmarks, OpenCV's Haar as the fallback), alignment on
the landmarks, and `FacePipeline`, the detector + alignment that training, predict, predict_video, the service
and `prepare` all share. See docs/faces.md."""

from deepfake_lightning.faces.alignment import ALIGN_MODES, TEMPLATE, Alignment, align_face, map_points
from deepfake_lightning.faces.base import FaceDetector, FaceDetectorError
from deepfake_lightning.faces.cache import DetectionCache, landmarks_for
from deepfake_lightning.faces.detector import DEFAULT_DETECTOR, DETECTORS, build_detector
from deepfake_lightning.faces.pipeline import FACE_FOUND, FACE_NOT_FOUND, FaceCrop, FacePipeline
from deepfake_lightning.faces.types import LANDMARK_NAMES, Face

__all__ = [
    "ALIGN_MODES",
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "FACE_FOUND",
    "FACE_NOT_FOUND",
    "LANDMARK_NAMES",
    "TEMPLATE",
    "Alignment",
    "DetectionCache",
    "Face",
    "FaceCrop",
    "FaceDetector",
    "FaceDetectorError",
    "FacePipeline",
    "align_face",
    "build_detector",
    "landmarks_for",
    "map_points",
]
