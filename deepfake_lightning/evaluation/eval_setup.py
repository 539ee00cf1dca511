"""What every evaluation entry point settles before predicting: the model, its preprocessing, device, T/threshold.

The checkpoint is opened once, by `open_model`, at the start; everything after (the training data config,
the preprocessing, the calibration, the bundle this run writes) comes from that one `LoadedModel`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.bundle import (
    CALIBRATION_FILE,
    LoadedModel,
    open_model,
    score_distribution,
    summarize_test_metrics,
    write_model_bundle,
)
from deepfake_lightning.data.face_crops import data_face_crop
from deepfake_lightning.distributed import is_rank_zero
from deepfake_lightning.evaluation.calibrate_run import DEFAULT_RULE, calibrate_predictions
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.training_data import adopt_training_data
from deepfake_lightning.utils.config_validation import validate_data, validate_run
from deepfake_lightning.utils.device import resolve_device  # noqa: F401 (robustness imports it from here)
from deepfake_lightning.utils.task import seed

log = logging.getLogger(__name__)


def apply_checkpoint_preprocessing(cfg: DictConfig, model: LoadedModel) -> None:
    """Set ``data.<key>`` for every eval-preprocessing value stored with the model (size, crop, normalization...).

    A checkpoint scored at another resolution or normalisation gives silently wrong numbers, so unless
    ``use_checkpoint_preprocessing=false`` the checkpoint's own values win over the data config's.
    """
    if not OmegaConf.select(cfg, "use_checkpoint_preprocessing", default=True):
        return
    with open_dict(cfg):
        for key, value in model.preprocessing.items():
            if key == "face_crop":  # how training cut faces; crops `prepare` made ahead are read as they are
                value = data_face_crop(value)
                if value is None:
                    continue
            current = cfg.data.get(key) if key in cfg.data else None
            if isinstance(value, dict) and isinstance(current, DictConfig):  # face_crop: keep local keys
                value = {**OmegaConf.to_container(current, resolve=True), **value}
            if key in cfg.data and OmegaConf.select(cfg, f"data.{key}") != value:
                log.info("data.%s=%s from the checkpoint (config had %s)", key, value, cfg.data.get(key))
                cfg.data[key] = value


def _calibration_settings(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.select(cfg, "calibration", default=None) or {}


def resolve_calibration(
    cfg: DictConfig, model: LoadedModel, datamodule: Any, output_dir: Any, device: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``calibration.refit``: fit on this data's validation split; else the calibration `open_model` applied
    (``calibration.path``: auto | a calibration.json or bundle fitted for this checkpoint | null). Also the
    validation score distribution this run's bundle records: the refit's validation split (the reference
    drift is measured against goes with the calibration), else None (the checkpoint's own is kept)."""
    settings = _calibration_settings(cfg)
    if settings.get("refit", False):
        rule = settings.get("threshold_rule", DEFAULT_RULE)
        preds = predict_logits(model.module, datamodule.val_dataloader(), device)
        record = calibrate_predictions(preds, output_dir, rule, checkpoint=model)
        source = str(Path(output_dir) / CALIBRATION_FILE)
        return {**record, "source": source}, score_distribution(preds["logit"])  # the refit's own record
    return model.calibration_record(), None


def write_evaluation_bundle(
    cfg: DictConfig,
    model: LoadedModel,
    calibration: dict[str, Any],
    results: dict[str, Any],
    output_dir: Path,
    validation_scores: dict[str, Any] | None = None,
) -> Path:
    """`bundle.json`: the checkpoint with the calibration this run applied and the metrics it measured on
    ``cfg.data_name``, keeping the training data its own bundle records (and its validation score
    distribution, unless this run refitted on another validation split: `validation_scores`)."""
    source = calibration.get("source")
    return write_model_bundle(
        model,
        output_dir / "bundle.json",
        calibration=calibration,
        calibration_file=source if calibration.get("fitted_on") and source else None,
        test_metrics=summarize_test_metrics(results, str(cfg.data_name), model.path),
        validation_scores=validation_scores,
    )


def start_evaluation(cfg: DictConfig) -> tuple[LoadedModel, Path]:
    """Shared start of eval and robustness: validate, open the model once, adopt its training data config and
    its preprocessing, seed."""
    validate_data(cfg)
    validate_run(cfg)
    settings = _calibration_settings(cfg)
    calibration = "auto" if settings.get("refit", False) else settings.get("path", "auto")
    model = open_model(cfg.ckpt_path, calibration)  # a damaged or foreign file is named before anything else
    adopt_training_data(cfg, model)  # no data= on the command line: the checkpoint's own training data config
    validate_data(cfg)
    seed(cfg)
    output_dir = Path(cfg.paths.output_dir)
    apply_checkpoint_preprocessing(cfg, model)
    if is_rank_zero():  # under DDP every rank runs this, in the same dir
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return model, output_dir
