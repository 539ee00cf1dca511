"""Build a detector from an entry-point config (predict, predict_video, serve), failing fast on bad values."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.face_regions import MAX_FACES, options_from_config
from deepfake_lightning.inference.load import load_detector
from deepfake_lightning.utils.entry_schema import ModelSource


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default)


def validate_detector_config(cfg: DictConfig, schema: type[ModelSource] = ModelSource) -> list[str]:
    """The model keys of `cfg` through the schema (`utils/entry_schema.py`); the model files it names."""
    return schema.check({key: cfg[key] for key in schema.model_fields if key in cfg}).model_paths()


def detector_from_config(cfg: DictConfig) -> BaseDetector:
    paths = validate_detector_config(cfg)
    options: dict[str, Any] = {
        "backend": _get(cfg, "backend", "auto"),
        "calibration": _get(cfg, "calibration", "auto"),
        "threshold": _get(cfg, "threshold"),
        "device": _get(cfg, "device", "cpu"),
        "face_crop": _get(cfg, "face_crop"),
        "face_options": {
            **options_from_config(lambda key: _get(cfg, key)),
            "max_faces": _get(cfg, "face_max_faces", MAX_FACES),
        },
    }
    for key in ("min_size", "max_pixels", "onnx_sessions"):
        if _get(cfg, key) is not None:
            options[key] = int(_get(cfg, key))
    return load_detector(paths if len(paths) > 1 else paths[0], **options)
