"""Fit a run's temperature and decision threshold on VALIDATION predictions and store them in the run folder.

The record is written to ``RUN/calibration.json`` by the bundle package (with the SHA-256 of the checkpoint it
was fitted for) and goes into the checkpoint's model bundle, through which eval and inference read it.
Contract: ``p_fake =
sigmoid(logit / temperature)`` and an image is fake iff ``p_fake >= threshold``; the threshold is chosen on
the temperature-scaled validation scores by ``threshold_rule`` (see ``thresholds.choose_threshold``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.bundle import LoadedModel, write_calibration
from deepfake_lightning.evaluation.calibration import apply_temperature, calibration_summary, fit_temperature
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.plots import plot_reliability
from deepfake_lightning.evaluation.thresholds import choose_threshold

log = logging.getLogger(__name__)

DEFAULT_RULE = "0.5"


def uncalibrated(threshold: float = 0.5) -> dict[str, Any]:
    """What applies when a run has no calibration: raw sigmoid scores and the configured fixed threshold."""
    return {"temperature": 1.0, "threshold": float(threshold), "threshold_rule": "fixed", "fitted_on": None}


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
    checkpoint: LoadedModel | None = None,
) -> dict[str, Any]:
    """Predict the validation loader, fit, write the calibration record and ``reliability.png``; return the
    record. `checkpoint`: the opened model the record is fitted for (its file name and SHA-256 are kept)."""
    return calibrate_predictions(predict_logits(module, val_loader, device), output_dir, rule, checkpoint)


def calibrate_predictions(
    preds: dict[str, Any],
    output_dir: str | Path,
    rule: str | float = DEFAULT_RULE,
    checkpoint: LoadedModel | None = None,
) -> dict[str, Any]:
    """`calibrate` on validation predictions already made (``predict_logits``'s dict): train predicts
    validation once for the calibration and for the score distribution its bundle records."""
    output_dir = Path(output_dir)
    record = fit_calibration(preds["logit"], preds["label"], rule)
    if checkpoint is not None:  # what the bundle reader checks a calibration against
        record["checkpoint"] = str(checkpoint.path)
        record["checkpoint_sha256"] = checkpoint.sha256
    write_calibration(output_dir, record)
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
