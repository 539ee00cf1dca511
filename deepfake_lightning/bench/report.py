"""bench.json and bench.md: ratios to the same run's baseline, schema checks, and the issue's targets."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepfake_lightning.bench.rows import ROW_FIELDS, TASKS, Row

NUMERIC = ("throughput_img_s", "latency_ms_p50", "latency_ms_p99")
TARGET_SIZE = 224


def is_baseline(row: Row) -> bool:
    return "baseline" in row.backend


def _baseline_for(row: Row, baselines: Sequence[Row]) -> Row | None:
    """Same task, then the closest match: same stage and size, same size, any."""
    same_task = [b for b in baselines if b.task == row.task]
    for match in (
        lambda b: b.stage == row.stage and b.image_size == row.image_size,
        lambda b: b.image_size == row.image_size,
        lambda b: True,
    ):
        found = [b for b in same_task if match(b)]
        if found:
            return found[0]
    return None


def compute_ratios(rows: Sequence[Row]) -> None:
    """`ratio_to_baseline` = throughput / throughput of the matching baseline row measured in this run."""
    baselines = [r for r in rows if is_baseline(r) and r.throughput_img_s > 0]
    for row in rows:
        base = _baseline_for(row, baselines)
        ok = base is not None and row.throughput_img_s > 0 and "error" not in row.extra
        row.ratio_to_baseline = round(row.throughput_img_s / base.throughput_img_s, 3) if ok else None


def validate_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every problem of the row list (empty when valid): fields, types, tasks, devices, one baseline per task."""
    problems = []
    for i, row in enumerate(rows):
        missing = [f for f in ROW_FIELDS if f not in row]
        if missing:
            problems.append(f"row {i}: missing {missing}")
            continue
        if row["task"] not in TASKS:
            problems.append(f"row {i}: task {row['task']!r} not in {TASKS}")
        if row["device"] != "cpu" and not str(row["device"]).startswith("cuda:"):
            problems.append(f"row {i}: device {row['device']!r} is neither cpu nor cuda:<name>")
        for name in NUMERIC:
            value = row[name]
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                problems.append(f"row {i}: {name}={value!r} is not a non-negative number")
        for name in ("batch_size", "image_size", "workers", "threads"):
            if not isinstance(row[name], int) or row[name] < 0:
                problems.append(f"row {i}: {name}={row[name]!r} is not a non-negative integer")
        ratio = row["ratio_to_baseline"]
        if ratio is not None and (not isinstance(ratio, int | float) or ratio < 0):
            problems.append(f"row {i}: ratio_to_baseline={ratio!r}")
    for task in sorted({r.get("task") for r in rows}):
        if not any(r.get("task") == task and "baseline" in str(r.get("backend")) for r in rows):
            problems.append(f"task {task}: no baseline row")
    return problems


def _best(rows: Sequence[Row], keep: Any) -> Row | None:
    found = [r for r in rows if keep(r) and r.throughput_img_s > 0 and "error" not in r.extra]
    return max(found, key=lambda r: r.throughput_img_s) if found else None


def _accurate(row: Row, limit: float = 0.005) -> bool:
    delta = row.extra.get("auroc_delta")
    return abs(delta) <= limit if delta is not None else row.precision == "fp32"


def _rate(row: Row) -> str:
    typical = row.extra.get("throughput_at_p50_img_s")
    return f"{row.throughput_img_s:.0f} img/s" + (f" (p50 call: {typical:.0f})" if typical else "")


def _target(name: str, goal: str, row: Row | None, measured: str | None, met: bool | None) -> dict[str, Any]:
    return {
        "target": name,
        "goal": goal,
        "measured": measured if row is not None else "not measured",
        "backend": f"{row.backend} {row.precision} bs{row.batch_size}" if row is not None else "-",
        "ratio_to_baseline": row.ratio_to_baseline if row is not None else None,
        "met": met if row is not None else None,
    }


def targets(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The issue's targets, each with the row that answers it; `met` is reported, never asserted."""
    cpu224 = [r for r in rows if r.task == "inference" and r.device == "cpu" and r.image_size == TARGET_SIZE]
    best = _best(cpu224, _accurate)
    fastest = _best(cpu224, lambda r: True)
    fp32 = _best(cpu224, lambda r: r.precision == "fp32")
    pipeline = _best(rows, lambda r: r.task == "data" and r.stage == "train_aug" and r.workers == 0)
    index = next((r for r in rows if r.task == "index" and r.backend == "faces140k_csv"), None)
    cuda = _best(rows, lambda r: r.task == "inference" and r.device.startswith("cuda"))
    found = [
        _target(
            "CPU best inference, 224 px",
            ">= 900 img/s, |AUROC change| <= 0.005",
            best,
            best and f"{_rate(best)}, AUROC change {best.extra.get('auroc_delta', 0.0)}",
            best and best.throughput_img_s >= 900,
        ),
        _target(
            "CPU fastest inference, 224 px, any accuracy",
            "context: what int8 gives before the AUROC check",
            fastest,
            fastest and f"{_rate(fastest)}, AUROC change {fastest.extra.get('auroc_delta', 0.0)}",
            None,
        ),
        _target(
            "CPU fp32 inference, 224 px",
            ">= 400 img/s",
            fp32,
            fp32 and _rate(fp32),
            fp32 and fp32.throughput_img_s >= 400,
        ),
        _target(
            "input pipeline (decode + train augmentation)",
            ">= 600 img/s per core",
            pipeline,
            pipeline and f"{_rate(pipeline)} on one core",
            pipeline and pipeline.throughput_img_s >= 600,
        ),
        _target(
            "140k index build",
            "<= 2 s and <= 100 MB",
            index,
            index and f"{index.extra['scaled_to_140k_s']} s, {index.peak_mem_mb} MB",
            index and index.extra["scaled_to_140k_s"] <= 2 and (index.peak_mem_mb or 0) <= 100,
        ),
        _target(
            "GPU (H100) inference",
            "stated in docs/benchmarks.md",
            cuda,
            cuda and f"{cuda.throughput_img_s:.0f} img/s",
            None,
        ),
    ]
    return found + predict_targets(rows)


E2E_GOAL = 0.70


def predict_targets(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One target per backend of the predict task: end to end >= 70 % of model only, same everything else."""
    found = []
    for row in rows:
        if row.task != "predict" or row.stage != "end_to_end" or "e2e_over_model_only" not in row.extra:
            continue
        ratio = row.extra["e2e_over_model_only"]
        measured = (
            f"{row.throughput_img_s:.0f} of {row.extra['model_only_img_s']:.0f} img/s = {ratio:.2f} "
            f"(decode only {row.extra['decode_only_img_s']:.0f} img/s, {row.workers} workers)"
        )
        found.append(
            _target(
                f"end to end / model only (predict), {row.image_size} px",
                f">= {E2E_GOAL:.2f}",
                row,
                measured,
                ratio is not None and ratio >= E2E_GOAL,
            )
        )
    return found


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def markdown(rows: Sequence[Row], meta: Mapping[str, Any], goals: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "# Benchmark",
        "",
        f"- date: {meta['date']}",
        f"- host: {meta['host']}",
        f"- command: `{meta['command']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "## Targets (reported, never asserted)",
        "",
        "| target | goal | measured | backend | x baseline | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in goals:
        met = {True: "yes", False: "no", None: "-"}[t["met"]]
        lines.append(
            f"| {t['target']} | {t['goal']} | {t['measured']} | {t['backend']} | "
            f"{_cell(t['ratio_to_baseline'])} | {met} |"
        )
    columns = [*ROW_FIELDS, "notes"]
    lines += ["", "## Rows", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        data = row.to_dict()
        notes = ", ".join(f"{k}={v}" for k, v in row.extra.items())
        lines.append("| " + " | ".join(_cell(data.get(c)) for c in columns[:-1]) + f" | {notes} |")
    lines += [
        "",
        "Ratios divide by the baseline row of the same task (same stage and image size where one "
        "exists) from this run. Latency is per call: a batch of `batch_size`, or one image.",
        "",
    ]
    return "\n".join(lines)


def write_report(rows: Sequence[Row], out_dir: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write bench.json and bench.md into `out_dir`; returns the JSON document."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    compute_ratios(rows)
    goals = targets(rows)
    document = {"rows": [r.to_dict() for r in rows], "targets": goals, **meta}
    problems = validate_rows(document["rows"])
    if problems:
        document["problems"] = problems
    (out / "bench.json").write_text(json.dumps(document, indent=2, default=str))
    (out / "bench.md").write_text(markdown(rows, meta, goals))
    return document
