"""`python -m deepfake_lightning.train [+experiment=NAME] [overrides]`: fit, calibrate on validation, test the best
checkpoint once, and leave its model bundle `checkpoints/best.ckpt.json` (see `deepfake_lightning.bundle`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.bundle import (
    CALIBRATION_FILE,
    LoadedModel,
    check_resumable,
    find_last_checkpoint,
    open_model,
    score_distribution,
    summarize_test_metrics,
    training_data_summary,
    write_model_bundle,
)
from deepfake_lightning.data.cached_features import feature_cache_from_config, serving
from deepfake_lightning.data.face_crops import prepared_face_record
from deepfake_lightning.distributed import gather_test_outputs, is_rank_zero
from deepfake_lightning.distributed.requeue import requeued_checkpoint
from deepfake_lightning.evaluation.calibrate_run import calibrate_predictions, uncalibrated
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.per_group import carried_columns, report_by
from deepfake_lightning.evaluation.test_outputs import write_test_outputs
from deepfake_lightning.evaluation.training_data import data_config_name
from deepfake_lightning.update import prepare_update, score_before, write_forgetting
from deepfake_lightning.utils.config_validation import ConfigError, validate_config
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import instantiate_group, resolve_precision, run_task, seed

log = logging.getLogger(__name__)


def _require_checkpoint_to_test(cfg: DictConfig) -> None:
    """``train=false test=true`` without a checkpoint would score randomly initialised weights."""
    if cfg.get("test") and not cfg.get("train") and cfg.get("ckpt_path") is None:
        raise ConfigError(
            "train=false test=true needs ckpt_path=RUN/checkpoints/best.ckpt (else it would test untrained "
            "weights); to evaluate a trained checkpoint use python -m deepfake_lightning.eval ckpt_path=..."
        )


def record_prepared_faces(cfg: DictConfig) -> None:
    """Training on a folder set `prepare` cut from videos: `model.preprocessing.face_crop` becomes the face
    pipeline that cut it (`made_by: prepare`), so the bundle carries it and inference crops frames alike."""
    preprocessing = OmegaConf.select(cfg, "model.preprocessing", default=None)
    if not isinstance(preprocessing, DictConfig) or OmegaConf.select(
        cfg, "data.face_crop.enabled", default=False
    ):
        return  # data.face_crop on: the model config's own record of it
    record = prepared_face_record(OmegaConf.select(cfg, "data.root", default=None))
    if record is not None:
        with open_dict(cfg):
            cfg.model.preprocessing.face_crop = record
        log.info(
            "model.preprocessing.face_crop: the face pipeline prepare cut %s with: %s", cfg.data.root, record
        )


def train(cfg: DictConfig) -> dict[str, Any]:
    update = prepare_update(cfg)  # +experiment=update: ckpt_path is weights to fine-tune, not a resume
    validate_config(cfg)
    _require_checkpoint_to_test(cfg)
    resolve_precision(cfg)
    seed(cfg)
    output_dir = Path(cfg.paths.output_dir)
    record_prepared_faces(cfg)
    if is_rank_zero():  # DDP ranks > 0 run this too, in the same dir
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    ckpt_path = None if update else cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(find_last_checkpoint(cfg.paths.log_dir, exclude=output_dir))
        log.info("%s %s", "resuming from" if cfg.get("train") else "testing", ckpt_path)
    elif ckpt_path is None and cfg.get("train"):  # a requeued SLURM job continues where it was stopped
        ckpt_path = requeued_checkpoint(output_dir)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, _recursive_=False)
    if update:
        update.load_weights(model)
    elif ckpt_path is not None:  # a clear CheckpointError for a damaged, foreign or code-running file
        check_resumable(ckpt_path, model, resume=bool(cfg.get("train")))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate(
        cfg.trainer, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False
    )
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    info = {"model": model.size(), "data": datamodule.counts()}
    if getattr(datamodule, "face_counts", None):  # data.face_crop: faces found, photos without one, the cache
        info["face_crop"] = datamodule.face_counts
    if is_rank_zero():
        (output_dir / "model_info.json").write_text(json.dumps(info, indent=2))
        datamodule.write_split_manifest(output_dir / "splits.csv")
    log.info("model: %s", info["model"])

    if update and cfg.get("test") and trainer.is_global_zero:
        score_before(update, model, datamodule, trainer.strategy.root_device)
    if cfg.get("train"):  # with feature_cache.enabled, fit's train/valid batches are cached frozen features
        with serving(datamodule, feature_cache_from_config(cfg, output_dir)):
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    results: dict[str, Any] = {"status": "ok"}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        results[cfg.optimized_metric] = float(checkpoint.best_model_score)
        results["best_checkpoint"] = checkpoint.best_model_path
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    if not cfg.get("train"):  # train=false test=true: the given checkpoint's weights, never fresh ones
        best = ckpt_path
    trained = open_model(best, calibration=None) if best and trainer.is_global_zero else None
    calibration = uncalibrated(model.hparams.threshold)
    calibrating = bool(OmegaConf.select(cfg, "calibration.enabled", default=False))
    validation = None
    if trained is not None:
        validation = _validation_logits(trained, datamodule, trainer.strategy.root_device, calibrating)
    if trained is not None and validation is not None and calibrating:
        calibration = calibrate_predictions(validation, output_dir, cfg.calibration.threshold_rule, trained)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True)
        gather_test_outputs(trainer.lightning_module)  # every rank: a collective under DDP
        if trainer.is_global_zero:
            extra = {"checkpoint": best, **info, "calibration": calibration}
            scaling = calibration["temperature"], calibration["threshold"]
            results["test"] = write_test_outputs(  # data=multi: `source` carried, metrics per source
                trainer.lightning_module,
                output_dir,
                extra,
                *scaling,
                columns=carried_columns(datamodule),
                report_by=report_by(datamodule),
            )
            if update:  # update.json/.md: each set's test AUROC before and after (forgetting)
                results["update"] = write_forgetting(update, output_dir)
    if trained is not None:
        scores = score_distribution(validation["logit"]) if validation is not None else None
        bundle = _write_bundle(cfg, trained, calibration, info["data"], results.get("test"), scores)
        results["bundle"] = str(bundle)
    if is_rank_zero():
        (output_dir / "run_summary.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def _write_bundle(
    cfg: DictConfig,
    trained: LoadedModel,
    calibration: dict[str, Any],
    counts: Any,
    test: dict[str, Any] | None,
    validation_scores: dict[str, Any] | None,
) -> Path:
    """A trained checkpoint gets `best.ckpt.json` beside it; a given one (``train=false``) is described in
    this run's `bundle.json`, keeping the training data its own bundle records."""
    output_dir = Path(cfg.paths.output_dir)
    name = cfg.get("data_name") or data_config_name()  # an update's data is multi whatever data= said
    training = None  # train=false: the given checkpoint's own record
    if cfg.get("train"):
        training = training_data_summary(OmegaConf.to_container(cfg.data, resolve=True), name, counts)
    fitted = calibration.get("fitted_on") is not None
    return write_model_bundle(
        trained,
        None if cfg.get("train") else output_dir / "bundle.json",
        calibration=calibration,
        calibration_file=output_dir / CALIBRATION_FILE if fitted else None,
        training_data=training,
        test_metrics=summarize_test_metrics(test, name, trained.path) if test else None,
        validation_scores=validation_scores,
    )


def _validation_logits(
    trained: LoadedModel, datamodule: Any, device: Any, required: bool
) -> dict[str, Any] | None:
    """The best checkpoint's validation predictions, made once: the calibration is fitted on them (when
    enabled) and the bundle records their distribution, what a deployed model's score drift is measured
    against (`inference/drift.py`). Without calibration, a validation split that yields nothing is a warning."""
    try:
        return predict_logits(trained.module, datamodule.val_dataloader(), device)
    except ValueError as err:
        if required:
            raise
        log.warning("no validation score distribution recorded in the bundle: %s", err)
        return None


@hydra_main("train")
def main(cfg: DictConfig) -> float | None:
    """Returns the validation metric sweepers optimise (never a test metric)."""
    results = run_task(train, cfg)
    metric = results.get(cfg.get("optimized_metric"))
    return float(metric) if metric is not None else None


if __name__ == "__main__":
    main()
