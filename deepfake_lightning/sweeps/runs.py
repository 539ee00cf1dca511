"""Reading what a run or a multirun job left in its dir, without importing torch or Lightning.

A job dir holds ``.hydra/overrides.yaml`` (written by Hydra when the job starts), then ``run_summary.json``
(finished), or ``error.json`` (failed, written by ``run_task``), or neither (killed or still running).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RUN_FILES = ("run_summary.json", "error.json", "training_history.json", "test_results.json")


@dataclass
class JobRecord:
    """One job of a sweep (or one plain run): where it is, what was overridden, and how it ended."""

    dir: Path
    num: int | None
    overrides: list[str] = field(default_factory=list)
    status: str = "incomplete"  # ok | failed | incomplete
    error: str | None = None
    optimized_metric: str | None = None
    metric_value: float | None = None
    test: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "overrides.yaml").is_file() or any(
        (path / name).is_file() for name in RUN_FILES
    )


def _job_num(path: Path) -> int | None:
    hydra_cfg = _read_yaml(path / ".hydra" / "hydra.yaml") or {}
    num = (hydra_cfg.get("hydra") or {}).get("job", {}).get("num")
    if isinstance(num, int):
        return num
    return int(path.name) if path.name.isdigit() else None


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """The job dirs directly under a sweep dir, in job-number order (non-numeric names last, by name)."""
    sweep_dir = Path(sweep_dir)
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and is_run_dir(p)] if sweep_dir.is_dir() else []
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _optimized_metric(path: Path, default: str | None) -> str | None:
    for config in (path / "config.yaml", path / ".hydra" / "config.yaml"):
        value = (_read_yaml(config) or {}).get("optimized_metric")
        if value:
            return str(value)
    return default


def read_job(path: str | Path, optimized_metric: str | None = None) -> JobRecord:
    """Everything the sweep summary, the comparison and the notebooks need from one job dir."""
    path = Path(path)
    record = JobRecord(dir=path, num=_job_num(path))
    record.overrides = [str(o) for o in (_read_yaml(path / ".hydra" / "overrides.yaml") or [])]
    record.optimized_metric = _optimized_metric(path, optimized_metric)
    summary = _read_json(path / "run_summary.json")
    error = _read_json(path / "error.json")
    if isinstance(error, dict):
        record.status, record.error = "failed", str(error.get("error", "unknown error"))
    elif isinstance(summary, dict):
        record.status = str(summary.get("status", "ok"))
        record.error = summary.get("error")
    if isinstance(summary, dict) and record.optimized_metric in summary:
        record.metric_value = _float(summary[record.optimized_metric])
    test = _read_json(path / "test_results.json")
    if not isinstance(test, dict) and isinstance(summary, dict):
        test = summary.get("test")
    record.test = test if isinstance(test, dict) else {}
    return record


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# Lightning-logged threshold metrics are named "<name>@0.5" (modules/stage_metrics.py); runs written before that
# rename logged the same values (uncalibrated, at model.threshold = 0.5 by default) under the plain name
_RENAMED = ("accuracy", "f1", "real_detection_rate", "fake_detection_rate")


def load_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``training_history.json`` (empty when the run wrote none), older runs' plain
    ``val/accuracy``... read as ``val/accuracy@0.5``..."""
    history = _read_json(Path(run_dir) / "training_history.json")
    if not isinstance(history, list):
        return []
    for record in history:
        for stage in ("train", "val"):
            for name in _RENAMED:
                if isinstance(record, dict) and f"{stage}/{name}" in record:
                    record.setdefault(f"{stage}/{name}@0.5", record.pop(f"{stage}/{name}"))
    return history


def varying_overrides(records: list[JobRecord]) -> dict[Path, str]:
    """Per job, only the overrides that differ between jobs: a short label such as ``model.loss.name=bce``."""
    common = set.intersection(*(set(r.overrides) for r in records)) if records else set()
    labels = {}
    for record in records:
        varying = [o for o in record.overrides if o not in common]
        labels[record.dir] = " ".join(varying) or (" ".join(record.overrides) or record.dir.name)
    return labels
