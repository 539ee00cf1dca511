"""The files every test/eval run leaves behind, from the module's collected test predictions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.evaluation.aggregate import level_key
from deepfake_lightning.evaluation.calibration import apply_temperature, binary_nll
from deepfake_lightning.evaluation.group_outputs import write_group_outputs
from deepfake_lightning.evaluation.metrics import compute_metrics, expected_calibration_error
from deepfake_lightning.evaluation.per_group import column_values, per_value_results
from deepfake_lightning.evaluation.plots import (
    plot_confusion_matrix,
    plot_performance_summary,
    plot_pr,
    plot_reliability,
    plot_roc,
    plot_score_hist,
)
from deepfake_lightning.evaluation.predictions import write_predictions_csv
from deepfake_lightning.evaluation.report import write_report
from deepfake_lightning.utils.config_schema import EvalSettings


def collected_predictions(module: Any, temperature: float = 1.0) -> dict[str, Any]:
    """Paths, labels (1 = fake), raw logits and ``p_fake = sigmoid(logit / T)`` gathered by ``test_step``."""
    outputs = module.test_outputs
    if not outputs.get("path"):
        raise ValueError("the test split produced no predictions (empty, or every image was skipped)")
    logits = torch.cat(outputs["logit"]).double().numpy()
    return {
        "path": list(outputs["path"]),
        "label": torch.cat(outputs["target"]).numpy(),
        "logit": logits,
        "p_fake": apply_temperature(logits, temperature),
    }


def uncalibrated_scores(logits: Any, labels: Any) -> dict[str, float]:
    """Log loss and ECE of the raw sigmoid, so a report can show what temperature scaling changed on test."""
    return {
        "log_loss": binary_nll(logits, labels, 1.0),
        "ece": expected_calibration_error(apply_temperature(logits, 1.0), labels),
    }


def write_test_outputs(
    module: Any,
    output_dir: str | Path,
    extra: dict[str, Any] | None = None,
    temperature: float = 1.0,
    threshold: float | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    *,
    aggregation: EvalSettings | None = None,
    report_by: Sequence[str] = (),
) -> dict[str, Any]:
    """Writes ``test_results.json``, ``predictions.csv``, the PNGs and ``REPORT.md``; returns the results.

    ``temperature`` and ``threshold`` come from validation (``calibration.json``), never from these labels;
    ``threshold=None`` falls back to the module's configured threshold. ``columns`` (``{column: {path:
    value}}``, e.g. a labels-CSV ``video`` column) are written beside each prediction; with
    ``aggregation.aggregate_by`` naming one of them, its groups are also scored as a whole (``<column>_level``);
    each column of ``report_by`` (``source`` under ``data=multi``) gets metrics per value, ``per_<column>``
    (`per_group.py`).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    preds = collected_predictions(module, temperature)
    if threshold is None:
        threshold = float(module.hparams.get("threshold", 0.5))
    p_fake, labels = preds["p_fake"], preds["label"]
    results = compute_metrics(p_fake, labels, threshold=threshold)
    results["temperature"] = float(temperature)
    results["uncalibrated"] = uncalibrated_scores(preds["logit"], labels)
    carried = column_values(preds["path"], columns or {})
    results.update(per_value_results(carried, report_by, p_fake, labels, threshold))
    if aggregation is not None and aggregation.aggregate_by:
        column = aggregation.aggregate_by
        if column not in carried:
            raise ValueError(f"eval.aggregate_by={column!r}: not among the carried columns {sorted(carried)}")
        results[level_key(column)] = write_group_outputs(
            output_dir, aggregation, carried[column], p_fake, labels, threshold
        )
    results.update(extra or {})
    (output_dir / "test_results.json").write_text(json.dumps(results, indent=2, default=float))
    write_predictions_csv(
        output_dir / "predictions.csv", preds["path"], labels, preds["logit"], p_fake, carried
    )
    plot_confusion_matrix(results["confusion_matrix"], output_dir / "confusion_matrix.png", "test")
    plot_roc(p_fake, labels, output_dir / "roc.png")
    plot_pr(p_fake, labels, output_dir / "pr.png")
    plot_score_hist(p_fake, labels, output_dir / "score_hist.png", threshold=threshold)
    plot_performance_summary(results, output_dir / "performance_summary.png")
    plot_reliability(
        apply_temperature(preds["logit"], 1.0),
        p_fake if temperature != 1.0 else None,
        labels,
        output_dir / "test_reliability.png",
        title=f"Test reliability (T={temperature:.3g} from validation)",
    )
    write_report(output_dir)
    return results
