"""Inference and deployment: the `Detector` API, batch/video prediction, export and the HTTP service."""

from deepfake_lightning.inference.detector import Detector, Prediction
from deepfake_lightning.inference.ensemble import EnsembleDetector, evaluate_ensemble
from deepfake_lightning.inference.load import load_detector

__all__ = ["Detector", "EnsembleDetector", "Prediction", "evaluate_ensemble", "load_detector"]
