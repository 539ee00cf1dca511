"""Shared plumbing of the thin Hydra entry points: instantiation, precision, failure isolation."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.bundle import BundleError
from deepfake_lightning.data.index import DatasetLayoutError
from deepfake_lightning.faces.detector import FaceDetectorError
from deepfake_lightning.utils.config_tree import apply_extras
from deepfake_lightning.utils.config_validation import ConfigError

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Callbacks and loggers are dicts of `_target_` nodes; empty or missing groups give an empty list."""
    if not group:
        return []
    return [
        instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node
    ]


def resolve_precision(cfg: DictConfig) -> None:
    """`trainer.precision=auto-mixed`: bf16 (or fp16) mixed precision on CUDA, fp32 elsewhere."""
    if OmegaConf.select(cfg, "trainer.precision") != "auto-mixed":
        return
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    on_gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if on_gpu:
        precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    else:
        precision = "32-true"
    cfg.trainer.precision = precision


def _is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def run_task(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Run one job; in a multirun a failure is recorded in the job's dir and the sweep goes on.

    First the ``extras`` of the config (``conf/extras``: print the config tree, ...), as every entry point
    calls this.
    """
    apply_extras(cfg)
    output_dir = Path(OmegaConf.select(cfg, "paths.output_dir", default="."))
    try:
        return task(cfg)
    except ConfigError as err:
        if _is_multirun():
            _record_failure(output_dir, err)
            return {"status": "failed", "error": str(err)}
        raise SystemExit(f"Invalid config: {err}") from None
    except Exception as err:
        if _is_input_error(err):  # a bad file the user passed: one line, like a config error
            _record_failure(output_dir, err)
            if _is_multirun():
                return {"status": "failed", "error": str(err)}
            raise SystemExit(f"Invalid input: {err}") from None
        log.exception("job failed")
        _record_failure(output_dir, err)
        if _is_multirun():
            return {"status": "failed", "error": f"{err.__class__.__name__}: {err}"}
        raise
    finally:
        _close_loggers()


def _is_input_error(err: Exception) -> bool:
    """Dataset layout, checkpoint, model-file and face-detector-file errors name the file and the fix; a
    traceback adds nothing."""
    return isinstance(err, (DatasetLayoutError, BundleError, FaceDetectorError))


def _record_failure(output_dir: Path, err: BaseException) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "status": "failed",
            "error": f"{err.__class__.__name__}: {err}",
            "traceback": traceback.format_exc(),
        }
        (output_dir / "error.json").write_text(json.dumps(payload, indent=2))
    except OSError:
        log.error("could not write error.json to %s", output_dir)


def _close_loggers() -> None:
    try:
        # lazy: wandb costs 4.4 s to import here (-X importtime after torch, load 15); only logger=wandb needs it
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:
        pass


def seed(cfg: DictConfig) -> None:
    if OmegaConf.select(cfg, "seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
