"""`load_detector`: one model file -> `Detector`, several -> `EnsembleDetector`.

Its own module because it names both: `ensemble.py` builds on `detector.py`, so neither can hold it without an
import cycle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepfake_lightning.inference.detector import BaseDetector, Detector
from deepfake_lightning.inference.ensemble import EnsembleDetector


def load_detector(models: str | Path | Sequence[str | Path], **options: Any) -> BaseDetector:
    """One model -> `Detector`; several -> `EnsembleDetector` (mean of calibrated probabilities)."""
    if isinstance(models, (str, Path)):
        return Detector.load(models, **options)
    models = list(models)
    if not models:
        raise ValueError("no model given: set ckpt_path or ensemble")
    if len(models) == 1:
        return Detector.load(models[0], **options)
    return EnsembleDetector.load(models, **options)
