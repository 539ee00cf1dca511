"""Inference and deployment: the `Detector` API, batch/video prediction, export and the HTTP service."""

from deepfake_lightning.inference.detector import Detector, Prediction, load_detector
from deepfake_lightning.inference.ensemble import EnsembleDetector, evaluate_ensemble

__all__ = ["Detector", "EnsembleDetector", "Prediction", "evaluate_ensemble", "load_detector"]
