"""Build a detector from an entry-point config (predict, predict_video, serve), failing fast on bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from deepfake_lightning.inference.backends import BACKENDS
from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.load import load_detector
from deepfake_lightning.utils.config_validation import ConfigError


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default)


def model_paths(cfg: DictConfig) -> list[str]:
    """`ckpt_path=MODEL` or `ensemble=[A,B,...]` (not both); every file must exist."""
    ckpt, ensemble = _get(cfg, "ckpt_path"), _get(cfg, "ensemble")
    if ckpt is not None and ensemble:
        raise ConfigError(
            "set ckpt_path or ensemble, not both (an ensemble lists every model, ckpt_path included)"
        )
    if ensemble:
        if not isinstance(ensemble, (list, ListConfig)):
            raise ConfigError(f"ensemble={ensemble!r}: expected a list such as ensemble=[a.ckpt,b.onnx]")
        paths = [str(p) for p in ensemble]
    elif ckpt is not None:
        paths = [str(ckpt)]
    else:
        raise ConfigError("ckpt_path=null: pass ckpt_path=MODEL (.ckpt or exported .onnx) or ensemble=[A,B]")
    for path in paths:
        if not Path(path).is_file():
            key = "ensemble" if ensemble else "ckpt_path"
            raise ConfigError(f"{key}: {path!r} not found; expected a .ckpt or an exported .onnx file")
    return paths


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def validate_detector_config(cfg: DictConfig) -> list[str]:
    paths = model_paths(cfg)
    backend = _get(cfg, "backend", "auto")
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
    if backend == "torch" and any(p.endswith(".onnx") for p in paths):
        raise ConfigError("backend=torch cannot run an .onnx model; use backend=onnx or auto")
    threshold = _get(cfg, "threshold")
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise ConfigError(f"threshold={threshold!r}: expected null or a number in [0, 1]")
    for key, low in (
        ("min_size", 0),
        ("max_pixels", 1),
        ("batch_size", 1),
        ("num_workers", 0),
        ("onnx_sessions", 0),
    ):
        value = _get(cfg, key)
        if value is not None and not _is_int(value, low):
            raise ConfigError(f"{key}={value!r}: expected an integer >= {low}")
    return paths


def detector_from_config(cfg: DictConfig) -> BaseDetector:
    paths = validate_detector_config(cfg)
    options: dict[str, Any] = {
        "backend": _get(cfg, "backend", "auto"),
        "calibration": _get(cfg, "calibration", "auto"),
        "threshold": _get(cfg, "threshold"),
        "device": _get(cfg, "device", "cpu"),
        "face_crop": bool(_get(cfg, "face_crop", False)),
    }
    for key in ("min_size", "max_pixels", "onnx_sessions"):
        if _get(cfg, key) is not None:
            options[key] = int(_get(cfg, key))
    return load_detector(paths if len(paths) > 1 else paths[0], **options)
