"""Group-level test outputs (`eval.aggregate_by=video`): each video scored as a whole, beside the frame metrics.

Frame-level metrics count every frame of a 32-frame video as an independent test case, so their CIs are too
narrow and a model that is right on most frames of few videos looks better than it is. DeepfakeBench reports
the video level: one score per video (the mean of its frame probabilities), one AUROC over videos, and here a
bootstrap that resamples videos. The rule is `evaluation/aggregate.py`'s, the one `predict_video` applies.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepfake_lightning.evaluation.aggregate import GroupScores, group_level_metrics
from deepfake_lightning.evaluation.plots import plot_roc
from deepfake_lightning.utils.config_schema import EvalSettings


def write_group_scores(path: Path, column: str, groups: GroupScores) -> Path:
    """`predictions_by_<column>.csv`: one row per group, `<column>,label,n_frames,p_fake` (label 1 = fake)."""
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow((column, "label", "n_frames", "p_fake"))
        for key, label, n, score in zip(
            groups.keys, groups.labels.tolist(), groups.n_frames.tolist(), groups.p_fake.tolist(), strict=True
        ):
            writer.writerow((key, label, n, repr(score)))
    return path


def write_group_outputs(
    output_dir: Path,
    settings: EvalSettings,
    keys: Sequence[str],
    p_fake: Any,
    labels: Any,
    threshold: float,
) -> dict[str, Any]:
    """The group-level metrics (for `test_results.json` under `<column>_level`), with
    `predictions_by_<column>.csv` and `roc_<column>.png` written beside the frame-level files."""
    column = str(settings.aggregate_by)
    metrics, groups = group_level_metrics(
        keys, p_fake, labels, column, settings.aggregate, settings.top_k, threshold
    )
    write_group_scores(output_dir / f"predictions_by_{column}.csv", column, groups)
    if metrics["n_real"] and metrics["n_fake"]:
        plot_roc(groups.p_fake, groups.labels, output_dir / f"roc_{column}.png", f"ROC per {column}")
    return metrics
