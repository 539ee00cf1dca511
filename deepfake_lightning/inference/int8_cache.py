"""`predict quantize=int8` on a checkpoint: export + static int8 quantization once, then reuse it from a cache.

Why a cache: exporting and calibrating takes ~10-30 s on a CPU, scoring 2 000 images at int8 speed a few
seconds. The cache key is the checkpoint's SHA-256, the calibration images (path, size, mtime) and the
quantization recipe, so a retrained checkpoint or another calibration set never reuses a stale model.
Temperature and threshold are not in the key: they are read from the checkpoint's model bundle on every load
(the bundle reader accepts them because they were fitted for the checkpoint the int8 model was exported
from), so a re-calibration needs no re-quantization.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.bundle import LoadedModel, manifest_path, open_model
from deepfake_lightning.inference.export_model import export_model
from deepfake_lightning.inference.inputs import expand_inputs
from deepfake_lightning.inference.quantize import sample_subset
from deepfake_lightning.utils.config_validation import ConfigError

log = logging.getLogger(__name__)
RECIPE = "static_qdq_per_channel_minmax_v1"  # what export_model(quantize="int8") does with calibration images


def calibration_images(cfg: DictConfig, inputs: Sequence[Path]) -> list[Path]:
    """Up to `max_calibration_images` of `calibration_dir`, else of the input files (a seeded subset)."""
    folder = OmegaConf.select(cfg, "calibration_dir")
    pool = expand_inputs(str(folder)) if folder is not None else list(inputs)
    limit = int(OmegaConf.select(cfg, "max_calibration_images", default=128))
    chosen = [Path(p) for p, _ in sample_subset([(str(p), 0) for p in pool], limit)]
    if not chosen:
        raise ConfigError(f"calibration_dir={folder!r}: no image files found there")
    return chosen


def cache_key(model: LoadedModel, images: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"{RECIPE}\n{model.sha256}\n".encode())
    for path in images:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def int8_model(model: LoadedModel, cache_dir: str | Path, images: Sequence[Path]) -> Path:
    """The cached `NAME-KEY.int8.onnx` (+ `.json`) for this checkpoint (opened uncalibrated) and calibration
    set, made if missing."""
    name = f"{model.path.stem}-{cache_key(model, images)}.int8.onnx"
    target = Path(cache_dir) / name
    if target.is_file() and manifest_path(target).is_file():
        log.info("int8 model from the cache: %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("quantizing %s to int8 (%d calibration images) -> %s", model.path, len(images), target)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        exported = export_model(model, Path(tmp) / name, quantize="int8", calibration_images=list(images))
        # metadata first: a reader that finds the model finds its metadata too (same directory: atomic)
        os.replace(manifest_path(exported), manifest_path(target))
        os.replace(exported, target)
    return target


def int8_config(cfg: DictConfig, inputs: Sequence[Path]) -> DictConfig:
    """A copy of `cfg` that runs the cached int8 model with the checkpoint's own calibration."""
    checkpoint = open_model(str(cfg.ckpt_path), calibration=None)  # the int8 copy carries no calibration
    model = int8_model(checkpoint, str(cfg.int8_cache_dir), calibration_images(cfg, inputs))
    calibration = OmegaConf.select(cfg, "calibration", default="auto")
    if str(calibration) == "auto":  # the checkpoint's own bundle, else uncalibrated like the checkpoint
        calibration = checkpoint.bundle.manifest
    out = cfg.copy()
    with open_dict(out):
        out.ckpt_path = str(model)
        out.backend = "onnx"
        out.calibration = str(calibration) if calibration is not None else "none"
    return out
