"""What every evaluation entry point settles before predicting: preprocessing, device, temperature/threshold."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.bundle import checkpoint_bundle, load_bundle, test_metrics_summary, write_bundle
from deepfake_lightning.evaluation.calibrate_run import DEFAULT_RULE, calibrate
from deepfake_lightning.utils.device import resolve_device  # noqa: F401 (robustness imports it from here)

log = logging.getLogger(__name__)


def apply_checkpoint_preprocessing(cfg: DictConfig, module: Any) -> None:
    """Set ``data.<key>`` for every eval-preprocessing value stored in the checkpoint (size, crop, normalization...).

    A checkpoint scored at another resolution or normalisation gives silently wrong numbers, so unless
    ``use_checkpoint_preprocessing=false`` the checkpoint's own values win over the data config's.
    """
    stored = dict(module.hparams.get("preprocessing") or {})
    if not OmegaConf.select(cfg, "use_checkpoint_preprocessing", default=True):
        return
    with open_dict(cfg):
        for key, value in stored.items():
            if key in cfg.data and OmegaConf.select(cfg, f"data.{key}") != value:
                log.info("data.%s=%s from the checkpoint (config had %s)", key, value, cfg.data.get(key))
                cfg.data[key] = value


def resolve_calibration(
    cfg: DictConfig, module: Any, datamodule: Any, output_dir: Any, device: Any
) -> dict[str, Any]:
    """``calibration.refit``: fit on this data's validation split; else the checkpoint bundle's calibration
    (``calibration.path``: auto | a calibration.json or bundle fitted for this checkpoint | null)."""
    settings = OmegaConf.select(cfg, "calibration", default=None) or {}
    if settings.get("refit", False):
        rule = settings.get("threshold_rule", DEFAULT_RULE)
        record = calibrate(
            module, datamodule.val_dataloader(), output_dir, rule, device, checkpoint=cfg.ckpt_path
        )
        return {**record, "source": str(Path(output_dir) / "calibration.json")}  # the refit's own record
    return load_bundle(cfg.ckpt_path, settings.get("path", "auto")).calibration_record()


def write_evaluation_bundle(
    cfg: DictConfig, calibration: dict[str, Any], results: dict[str, Any], output_dir: Path
) -> Path:
    """`bundle.json`: the checkpoint with the calibration this run applied and the metrics it measured on
    ``cfg.data_name``, keeping the training data its own bundle records."""
    source = calibration.get("source")
    bundle = checkpoint_bundle(
        cfg.ckpt_path,
        calibration,
        source if calibration.get("fitted_on") and source else None,
        load_bundle(cfg.ckpt_path, calibration=None, verify=False).training_data,
        test_metrics_summary(results, str(cfg.data_name), cfg.ckpt_path),
    )
    return write_bundle(bundle, output_dir / "bundle.json")


def start_evaluation(cfg: DictConfig) -> tuple[Any, Path]:
    """Shared start of eval and robustness: validate, seed, load the checkpoint and adopt its preprocessing."""
    from deepfake_lightning.checkpoints import load_detector_module
    from deepfake_lightning.distributed import is_rank_zero
    from deepfake_lightning.evaluation.training_data import adopt_training_data
    from deepfake_lightning.utils.config_validation import validate_data, validate_run
    from deepfake_lightning.utils.task import seed

    validate_data(cfg)
    validate_run(cfg)
    module = load_detector_module(cfg.ckpt_path)  # a damaged or foreign file is named before anything else
    adopt_training_data(cfg)  # no data= on the command line: the checkpoint's own training data config
    validate_data(cfg)
    seed(cfg)
    output_dir = Path(cfg.paths.output_dir)
    apply_checkpoint_preprocessing(cfg, module)
    if is_rank_zero():  # under DDP every rank runs this, in the same dir
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return module, output_dir
