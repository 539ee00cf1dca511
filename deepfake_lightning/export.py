"""`python -m deepfake_lightning.export ckpt_path=CKPT format=onnx|torchscript output=FILE [quantize=int8]`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.bundle import manifest_path
from deepfake_lightning.data.index import DatasetLayoutError, index_folder
from deepfake_lightning.inference.export_model import export_model
from deepfake_lightning.inference.inputs import expand_inputs
from deepfake_lightning.inference.quantize import sample_subset
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.entry_schema import EXPORT_SUFFIX, ExportSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def _validate(cfg: DictConfig) -> Path:
    """Every key through the schema (`utils/entry_schema.py`); the output path (default: in the run folder)."""
    ExportSettings.check(cfg)
    suffix = EXPORT_SUFFIX[cfg.format]
    return Path(str(cfg.output)) if cfg.output else Path(cfg.paths.output_dir) / f"model{suffix}"


def _eval_samples(cfg: DictConfig) -> list[tuple[str, int]] | None:
    if cfg.eval_dir is None:
        return None
    try:
        samples = index_folder(cfg.eval_dir, use_all_for_test=True)["test"]
    except DatasetLayoutError as err:
        raise ConfigError(f"eval_dir: {err}") from None
    return sample_subset(samples, cfg.max_eval_images)


def export(cfg: DictConfig) -> dict[str, Any]:
    output = _validate(cfg)
    calibration_images = None
    if cfg.quantize and cfg.calibration_dir is not None:
        images = expand_inputs(str(cfg.calibration_dir))
        calibration_images = [
            Path(p) for p, _ in sample_subset([(str(p), 0) for p in images], cfg.max_calibration_images)
        ]
        if not calibration_images:
            raise ConfigError(f"calibration_dir={cfg.calibration_dir!r}: no image files found there")
    model = export_model(
        cfg.ckpt_path,
        output,
        fmt=cfg.format,
        opset=cfg.opset,
        calibration=cfg.calibration,
        quantize=cfg.quantize,
        calibration_images=calibration_images,
        eval_samples=_eval_samples(cfg) if cfg.quantize else None,
    )
    return {"status": "ok", "model": str(model), "bundle": str(manifest_path(model))}


@hydra_main("export")
def main(cfg: DictConfig) -> None:
    run_task(export, cfg)


if __name__ == "__main__":
    main()
