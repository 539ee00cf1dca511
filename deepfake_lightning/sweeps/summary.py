"""``sweep_summary.csv`` / ``.json``: one row per job with its overrides, status, optimized and test metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from deepfake_lightning.sweeps.runs import JobRecord, find_job_dirs, read_job, varying_overrides

KEY_TEST_METRICS = ("auroc", "ap", "eer", "accuracy")


def _metric_entry(value: Any) -> dict[str, float | None]:
    if isinstance(value, dict):
        return {k: value.get(k) for k in ("value", "ci_low", "ci_high")}
    return {"value": value, "ci_low": None, "ci_high": None}


def job_row(record: JobRecord, label: str) -> dict[str, Any]:
    """The JSON form of one job; test metrics keep their bootstrap CIs."""
    return {
        "job": record.num,
        "dir": record.dir.name,
        "label": label,
        "overrides": record.overrides,
        "status": record.status,
        "optimized_metric": record.optimized_metric,
        "metric_value": record.metric_value,
        "test": {m: _metric_entry(record.test[m]) for m in KEY_TEST_METRICS if m in record.test},
        "n_test": record.test.get("n"),
        "error": record.error,
    }


def summarize_sweep(sweep_dir: str | Path, optimized_metric: str | None = None) -> list[dict[str, Any]]:
    records = [read_job(path, optimized_metric) for path in find_job_dirs(sweep_dir)]
    labels = varying_overrides(records)
    return [job_row(record, labels[record.dir]) for record in records]


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    flat = {k: row[k] for k in ("job", "dir", "label", "status", "optimized_metric", "metric_value")}
    flat["overrides"] = " ".join(row["overrides"])
    for metric in KEY_TEST_METRICS:
        entry = row["test"].get(metric, {})
        flat[f"test_{metric}"] = entry.get("value")
        flat[f"test_{metric}_ci_low"] = entry.get("ci_low")
        flat[f"test_{metric}_ci_high"] = entry.get("ci_high")
    flat["n_test"] = row["n_test"]
    flat["error"] = row["error"]
    return flat


def write_sweep_summary(sweep_dir: str | Path, optimized_metric: str | None = None) -> tuple[Path, Path]:
    """Writes ``sweep_summary.json`` and ``sweep_summary.csv`` into the sweep dir; returns both paths."""
    sweep_dir = Path(sweep_dir)
    rows = summarize_sweep(sweep_dir, optimized_metric)
    counts = {status: sum(r["status"] == status for r in rows) for status in ("ok", "failed", "incomplete")}
    payload = {"sweep_dir": str(sweep_dir), "optimized_metric": optimized_metric, **counts, "jobs": rows}
    json_path = sweep_dir / "sweep_summary.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    csv_path = sweep_dir / "sweep_summary.csv"
    flat = [_csv_row(r) for r in rows]
    fields = list(flat[0]) if flat else ["job", "status"]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    return json_path, csv_path
