"""Fit a run's temperature and decision threshold on VALIDATION predictions and store them as ``calibration.json``.

The record lives at ``RUN/calibration.json`` beside ``RUN/checkpoints/``, so anything holding a checkpoint path
finds it at ``Path(ckpt).parent.parent / "calibration.json"`` (eval, inference). Contract: ``p_fake =
sigmoid(logit / temperature)`` and an image is fake iff ``p_fake >= threshold``; the threshold is chosen on
the temperature-scaled validation scores by ``threshold_rule`` (see ``thresholds.choose_threshold``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.evaluation.calibration import (
    apply_temperature,
    calibration_summary,
    fit_temperature,
    load_calibration,
    save_calibration,
)
from deepfake_lightning.evaluation.plots import plot_reliability
from deepfake_lightning.evaluation.predict import predict_logits
from deepfake_lightning.evaluation.thresholds import choose_threshold

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
DEFAULT_RULE = "0.5"


def uncalibrated(threshold: float = 0.5) -> dict[str, Any]:
    """What applies when a run has no calibration: raw sigmoid scores and the configured fixed threshold."""
    return {"temperature": 1.0, "threshold": float(threshold), "threshold_rule": "fixed", "fitted_on": None}


def calibration_path(ckpt_path: str | Path) -> Path:
    """``RUN/checkpoints/x.ckpt`` -> ``RUN/calibration.json``."""
    return Path(ckpt_path).resolve().parent.parent / CALIBRATION_FILE


def fit_calibration(logits: Any, labels: Any, rule: str | float = DEFAULT_RULE) -> dict[str, Any]:
    """T by validation NLL, then the threshold by ``rule`` on the scaled scores, plus NLL/ECE before/after."""
    temperature = fit_temperature(logits, labels)
    p_scaled = apply_temperature(logits, temperature)
    # "flag nothing" can sit one ulp above 1.0; compute_metrics wants a threshold within [0, 1]
    threshold = min(choose_threshold(p_scaled, labels, rule), 1.0)
    record = calibration_summary(logits, labels, temperature, fitted_on="valid")
    record.update(threshold=float(threshold), threshold_rule=str(rule))
    return record


def calibrate(
    module: torch.nn.Module,
    val_loader: Iterable[dict[str, Any]],
    output_dir: str | Path,
    rule: str | float = DEFAULT_RULE,
    device: Any = None,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Predict the validation loader, fit, write ``calibration.json`` and ``reliability.png``; return the record."""
    output_dir = Path(output_dir)
    preds = predict_logits(module, val_loader, device)
    record = fit_calibration(preds["logit"], preds["label"], rule)
    if checkpoint is not None:
        record["checkpoint"] = str(checkpoint)
    save_calibration(output_dir / CALIBRATION_FILE, record["temperature"], record)
    plot_reliability(
        apply_temperature(preds["logit"], 1.0),
        apply_temperature(preds["logit"], record["temperature"]),
        preds["label"],
        output_dir / "reliability.png",
        title=f"Validation reliability (n={record['n']}, T={record['temperature']:.3g})",
    )
    log.info(
        "calibration on validation: T=%.4g, threshold=%.4g (%s), ECE %.4f -> %.4f",
        record["temperature"],
        record["threshold"],
        record["threshold_rule"],
        record["ece_before"],
        record["ece_after"],
    )
    return record


def find_calibration(
    ckpt_path: str | Path, path: str | Path | None = "auto", default_threshold: float = 0.5
) -> dict[str, Any]:
    """The calibration to apply for a checkpoint: ``auto`` = the run's own file if present, else uncalibrated.

    ``path`` may also name a ``calibration.json`` explicitly (must exist) or be None (T=1, ``default_threshold``).
    """
    if path is None:
        return uncalibrated(default_threshold)
    candidate = calibration_path(ckpt_path) if str(path) == "auto" else Path(path)
    if not candidate.is_file():
        if str(path) != "auto":
            raise FileNotFoundError(f"calibration file {candidate} not found")
        log.warning(
            "no %s next to the checkpoint's run: using T=1 and threshold %s", candidate, default_threshold
        )
        return uncalibrated(default_threshold)
    record = {**uncalibrated(default_threshold), **load_calibration(candidate)}
    fitted_for = record.get("checkpoint")
    if fitted_for and Path(fitted_for).name != Path(ckpt_path).name:
        log.warning("%s was fitted for %s but is applied to %s", candidate, Path(fitted_for).name, ckpt_path)
    record["source"] = str(candidate)
    return record


def calibrate_checkpoint(
    ckpt_path: str | Path,
    datamodule: Any,
    output_dir: str | Path,
    rule: str | float = DEFAULT_RULE,
    device: Any = None,
) -> dict[str, Any]:
    """Calibrate the weights of ``ckpt_path`` (the best checkpoint, not the last epoch's) on validation."""
    from deepfake_lightning.checkpoints import load_detector_module  # checkpoints -> modules -> heavy imports

    module = load_detector_module(ckpt_path)
    return calibrate(module, datamodule.val_dataloader(), output_dir, rule, device, checkpoint=ckpt_path)
