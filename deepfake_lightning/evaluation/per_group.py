"""Per-image columns a data module carries (``source`` under ``data=multi``) and metrics per value of one.

A data module may offer ``carried_columns()`` (``{column: {path: value}}``) and ``report_by`` (the columns whose
values get their own metrics). The columns travel by path into ``predictions.csv`` and ``splits.csv``; the
metrics of one value are `compute_metrics` on exactly that value's rows, at the operating point chosen on
validation for the whole model (so the per-source rows are the pooled row restricted, nothing refitted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.metrics import compute_metrics


def carried_columns(datamodule: Any) -> dict[str, dict[str, str]]:
    """``{column: {path: value}}`` of a data module; empty for one that carries none."""
    carried = getattr(datamodule, "carried_columns", None)
    return dict(carried()) if callable(carried) else {}


def report_by(datamodule: Any) -> tuple[str, ...]:
    return tuple(getattr(datamodule, "report_by", ()) or ())


def column_values(paths: Sequence[str], columns: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Each column's value per row (empty where a path has none), in the order of `paths`."""
    return {name: [values.get(str(path), "") for path in paths] for name, values in columns.items()}


def metrics_by_value(
    values: Sequence[str],
    p_fake: Any,
    labels: Any,
    threshold: float,
    n_bootstrap: int = 1000,
) -> dict[str, dict[str, Any]]:
    """`compute_metrics` (with CIs) on the rows of each value, in first-seen order."""
    values = np.asarray(values, dtype=object)
    p_fake, labels = np.asarray(p_fake), np.asarray(labels)
    return {
        str(value): compute_metrics(
            p_fake[values == value], labels[values == value], threshold=threshold, n_bootstrap=n_bootstrap
        )
        for value in dict.fromkeys(values.tolist())
    }


def per_value_results(
    rows: Mapping[str, Sequence[str]],
    by: Sequence[str],
    p_fake: Any,
    labels: Any,
    threshold: float,
    **kw: Any,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"per_<column>": {value: metrics}}`` for each column of `by` that `rows` holds."""
    return {
        f"per_{column}": metrics_by_value(rows[column], p_fake, labels, threshold, **kw)
        for column in by
        if column in rows
    }
