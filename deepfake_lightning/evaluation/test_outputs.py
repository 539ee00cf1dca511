"""The files every test/eval run leaves behind, from the module's collected test predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.plots import plot_confusion_matrix, plot_pr, plot_roc, plot_score_hist
from deepfake_lightning.evaluation.predictions import write_predictions_csv


def collected_predictions(module: Any) -> dict[str, Any]:
    """Paths, labels (1 = fake), logits and p_fake gathered by `DetectorModule.test_step`."""
    outputs = module.test_outputs
    if not outputs.get("path"):
        raise ValueError("the test split produced no predictions (empty, or every image was skipped)")
    logits = torch.cat(outputs["logit"])
    return {
        "path": list(outputs["path"]),
        "label": torch.cat(outputs["target"]).numpy(),
        "logit": logits.numpy(),
        "p_fake": torch.sigmoid(logits).numpy(),
    }


def write_test_outputs(
    module: Any, output_dir: str | Path, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Writes `test_results.json`, `predictions.csv` and the ROC/PR/histogram/confusion PNGs; returns the results."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    preds = collected_predictions(module)
    threshold = float(module.hparams.get("threshold", 0.5))
    results = compute_metrics(preds["p_fake"], preds["label"], threshold=threshold)
    results.update(extra or {})
    (output_dir / "test_results.json").write_text(json.dumps(results, indent=2, default=float))
    write_predictions_csv(
        output_dir / "predictions.csv", preds["path"], preds["label"], preds["logit"], preds["p_fake"]
    )
    plot_confusion_matrix(results["confusion_matrix"], output_dir / "confusion_matrix.png", "test")
    plot_roc(preds["p_fake"], preds["label"], output_dir / "roc.png")
    plot_pr(preds["p_fake"], preds["label"], output_dir / "pr.png")
    plot_score_hist(preds["p_fake"], preds["label"], output_dir / "score_hist.png")
    return results
