"""`python -m deepfake_lightning.export ckpt_path=CKPT format=onnx|torchscript output=FILE [quantize=int8]`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.bundle import manifest_path
from deepfake_lightning.data.index import DatasetLayoutError, index_folder
from deepfake_lightning.inference.export_model import FORMATS, export_model
from deepfake_lightning.inference.inputs import expand_inputs
from deepfake_lightning.inference.quantize import sample_subset
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def _validate(cfg: DictConfig) -> Path:
    if not Path(str(cfg.ckpt_path)).is_file():
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path!r}: file not found; expected a .ckpt written by training"
        )
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r}: expected one of {list(FORMATS)}")
    if cfg.quantize not in (None, "int8"):
        raise ConfigError(f"quantize={cfg.quantize!r}: expected null or int8")
    if cfg.quantize and cfg.format != "onnx":
        raise ConfigError("quantize=int8 needs format=onnx")
    for key in ("calibration_dir", "eval_dir"):
        if cfg[key] is not None and not Path(str(cfg[key])).is_dir():
            raise ConfigError(f"{key}={cfg[key]!r}: folder not found")
    output = (
        Path(str(cfg.output)) if cfg.output else Path(cfg.paths.output_dir) / f"model{SUFFIX[cfg.format]}"
    )
    if output.suffix != SUFFIX[cfg.format]:
        raise ConfigError(f"output={str(output)!r}: a {cfg.format} export should end in {SUFFIX[cfg.format]}")
    return output


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
