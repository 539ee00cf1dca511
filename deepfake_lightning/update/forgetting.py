"""The closing table of an update: each set's test AUROC before and after, so forgetting is measured.

"Before" is the detector as loaded, scored before training on the update run's own test splits (the old sets'
splits are the ones it was first tested on). "After" is the same run's test of its best checkpoint. Both score
the same images, so the change gets a paired bootstrap CI (`paired_bootstrap.py`). AUROC does not depend on the
temperature or the threshold, so the two scores need no common calibration. Written as ``update.json`` and
``update.md`` in the run dir, with the "before" scores in ``before_predictions.csv``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lightning.data.multi_datamodule import SOURCE_COLUMN
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.markdown import fmt, fmt_ci, markdown_table
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.paired_bootstrap import paired_auroc_delta
from deepfake_lightning.evaluation.per_group import carried_columns, column_values
from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv
from deepfake_lightning.update.plan import UpdatePlan

BEFORE_FILE = (
    "before_predictions.csv"  # the loaded detector's test predictions (T = 1), beside predictions.csv
)


def score_before(plan: UpdatePlan, module: Any, datamodule: Any, device: Any) -> None:
    """The loaded detector's logit for every test image (``plan.before``), and ``before_predictions.csv`` in
    the run dir: the table can be recomputed from the two prediction files."""
    preds = predict_logits(module, datamodule.test_dataloader(), device)
    plan.before = dict(zip(preds["path"], preds["logit"].tolist(), strict=True))
    columns = column_values(preds["path"], carried_columns(datamodule))
    p_fake = apply_temperature(preds["logit"], 1.0)
    write_predictions_csv(
        plan.run_dir / BEFORE_FILE, preds["path"], preds["label"], preds["logit"], p_fake, columns
    )


def _row(plan: UpdatePlan, name: str, preds: Mapping[str, Any], n_bootstrap: int) -> dict[str, Any]:
    """One set's AUROC before and after on exactly the images the run tested (a debug limit may cut them)."""
    rows = [i for i, source in enumerate(preds[SOURCE_COLUMN]) if source == name]
    labels, after = preds["label"][rows], preds["logit"][rows]
    before = np.array([plan.before[preds["path"][i]] for i in rows])
    auroc = [
        compute_metrics(apply_temperature(logits, 1.0), labels, n_bootstrap=n_bootstrap)["auroc"]
        for logits in (before, after)
    ]
    try:
        change = paired_auroc_delta(before, after, labels, n_bootstrap=n_bootstrap)
    except ValueError:  # one class only: no AUROC
        change = None
    return {
        "role": "new" if name in plan.new_sources else "old (replayed)" if plan.replay_fraction else "old",
        "n": len(rows),
        "auroc_before": auroc[0],
        "auroc_after": auroc[1],
        "change": change,
    }


def forgetting_table(plan: UpdatePlan, run_dir: str | Path, n_bootstrap: int = 1000) -> dict[str, Any]:
    """``update.json``'s content from the plan (before) and the run's test predictions (after)."""
    preds = read_predictions_csv(Path(run_dir) / "predictions.csv")
    names = dict.fromkeys(preds[SOURCE_COLUMN])
    sets = {name: _row(plan, name, preds, n_bootstrap) for name in names}
    old = [row["change"]["value"] for name, row in sets.items() if name in plan.old_sources and row["change"]]
    return {
        "checkpoint": plan.checkpoint,
        "checkpoint_sha256": plan.sha256,
        "old_data_from": plan.old_data_origin,
        "replay_fraction": plan.replay_fraction,
        "new_sources": plan.new_sources,
        "old_sources": plan.old_sources,
        "sets": sets,
        "forgetting": -float(np.mean(old)) if old else None,  # mean AUROC lost on the old sets (< 0: gained)
    }


def write_forgetting(plan: UpdatePlan, run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    table = forgetting_table(plan, run_dir)
    (run_dir / "update.json").write_text(json.dumps(table, indent=2, default=float))
    body = [
        [
            name,
            row["role"],
            row["n"],
            fmt_ci(row["auroc_before"], 3),
            fmt_ci(row["auroc_after"], 3),
            fmt_ci(row["change"], 3) if row["change"] else "n/a",
        ]
        for name, row in table["sets"].items()
    ]
    header = ("set", "role", "n (test)", "AUROC before", "AUROC after", "change [95% CI, paired]")
    text = (
        f"# Update of `{Path(plan.checkpoint).name}`\n\n"
        f"Fine-tuned from its weights on {', '.join(plan.new_sources)}, replaying "
        f"{', '.join(plan.old_sources)} as {fmt(100 * plan.replay_fraction, 0)}% of every training epoch. "
        "Test AUROC [95% CI] of the detector before the update and of this run's best checkpoint, on the same "
        "test images.\n\n" + markdown_table(header, body)
    )
    if table["forgetting"] is not None:
        text += f"\nForgetting (mean AUROC lost on the old sets): {fmt(table['forgetting'], 3)}.\n"
    (run_dir / "update.md").write_text(text)
    return table
