"""The ablation table: one row per variant (``+ablation=NAME``), test metrics with CIs, and the paired
difference to the baseline on the same test images.

    python -m deepfake_lightning.sweeps.ablation SWEEP_DIR... out=DIR [seconds=[s1,s2,...]]

Each sweep dir (one dataset) is copied in a light form to ``DIR/<sweep name>/`` (sweep summary, and per job the
overrides, config, history, test results and per-image test scores: no checkpoints or plots), so notebooks and
``deepfake_lightning.compare`` work on the committed results. ``seconds`` are the wall times of the sweeps.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from deepfake_lightning.evaluation.markdown import fmt, fmt_ci, markdown_table, value_of
from deepfake_lightning.evaluation.paired_bootstrap import paired_auroc_delta
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from deepfake_lightning.sweeps.runs import find_job_dirs, load_history, read_job
from deepfake_lightning.sweeps.summary import write_sweep_summary

LIGHT_FILES = (
    ".hydra/overrides.yaml",
    "config.yaml",
    "training_history.json",
    "test_results.json",
    "run_summary.json",
    "error.json",
)
METRICS = ("auroc", "ap", "eer", "accuracy")
SCORES_FILE = "test_scores.csv"  # image,label,logit: enough to recompute the paired deltas


def _ablation_of(job: Path) -> dict[str, str]:
    config = yaml.safe_load((job / "config.yaml").read_text()) if (job / "config.yaml").is_file() else {}
    info = (config or {}).get("ablation") or {}
    return {"factor": str(info.get("factor", "?")), "variant": str(info.get("variant", job.name))}


def _image_key(path: str) -> str:
    """split/class/file: the same image in two runs, wherever the dataset was on disk."""
    return "/".join(Path(path).parts[-3:])


def test_scores(job: Path) -> dict[str, tuple[int, float]] | None:
    """Per test image (``_image_key``): label and logit, from ``predictions.csv`` or the light
    ``test_scores.csv`` that ``export_light`` keeps."""
    if (job / "predictions.csv").is_file():
        preds = read_predictions_csv(job / "predictions.csv")
        rows = zip(preds["path"], preds["label"].tolist(), preds["logit"].tolist(), strict=True)
        return {_image_key(p): (int(y), float(z)) for p, y, z in rows}
    if (job / SCORES_FILE).is_file():
        with (job / SCORES_FILE).open(newline="") as handle:
            return {r["image"]: (int(r["label"]), float(r["logit"])) for r in csv.DictReader(handle)}
    return None


def _delta(job: Path, baseline: Path | None) -> dict[str, float] | None:
    """Paired AUROC(job) - AUROC(baseline) over the test images both runs scored."""
    if baseline is None or job == baseline:
        return None
    base, other = test_scores(baseline), test_scores(job)
    if not base or not other:
        return None
    common = [key for key in base if key in other]
    labels = [base[k][0] for k in common]
    if len(set(labels)) < 2:
        return None
    return paired_auroc_delta([base[k][1] for k in common], [other[k][1] for k in common], labels)


def ablation_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    jobs = find_job_dirs(sweep_dir)
    info = {job: _ablation_of(job) for job in jobs}
    baseline = next((j for j in jobs if info[j]["variant"] == "baseline"), None)
    rows = []
    for job in jobs:
        record = read_job(job)
        history = load_history(job)
        row: dict[str, Any] = {
            "dataset": sweep_dir.name,
            "job": job.name,
            **info[job],
            "status": record.status,
        }
        row["best_val"] = record.metric_value
        row["epochs"] = len(history)
        row["train_seconds"] = round(sum(h.get("epoch_seconds", 0.0) for h in history), 1)
        for metric in METRICS:
            row[f"test_{metric}"] = record.test.get(metric)
        row["delta_test_auroc"] = _delta(job, baseline) if record.status == "ok" else None
        row["n_test"] = record.test.get("n")
        row["error"] = record.error
        rows.append(row)
    return rows


def export_light(sweep_dir: Path, out_dir: Path) -> Path:
    """The small, committable part of a sweep dir, with the same layout (a sweep dir of its own)."""
    target = out_dir / sweep_dir.name
    if target.exists():
        shutil.rmtree(target)
    for job in find_job_dirs(sweep_dir):
        for name in LIGHT_FILES:
            if (job / name).is_file():
                (target / job.name / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(job / name, target / job.name / name)
        scores = test_scores(job)
        if scores:
            with (target / job.name / SCORES_FILE).open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["image", "label", "logit"])
                writer.writerows([key, label, repr(logit)] for key, (label, logit) in scores.items())
    write_sweep_summary(target, "val/auroc")
    return target


def _cell_delta(delta: dict[str, float] | None) -> str:
    if not delta:
        return "—"
    return f"{delta['value']:+.4f} [{delta['ci_low']:+.4f}, {delta['ci_high']:+.4f}]"


def ablation_markdown(rows: Sequence[dict[str, Any]], seconds: dict[str, float]) -> str:
    headers = [
        "factor",
        "variant",
        "best val AUROC",
        "test AUROC [95% CI]",
        "Δ test AUROC vs baseline (paired) [95% CI]",
        "test AP",
        "test EER",
        "test accuracy",
        "epochs",
        "train s",
    ]
    parts = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        cells = []
        for r in (r for r in rows if r["dataset"] == dataset):
            if r["status"] != "ok":
                cells.append([r["factor"], r["variant"], f"{r['status']}: {r['error']}", *[""] * 7])
                continue
            test = [fmt_ci(r["test_auroc"]), _cell_delta(r["delta_test_auroc"])]
            test += [fmt_ci(r[f"test_{m}"]) for m in ("ap", "eer", "accuracy")]
            cells.append(
                [r["factor"], r["variant"], fmt(r["best_val"]), *test, r["epochs"], r["train_seconds"]]
            )
        wall = seconds.get(dataset)
        n_test = next((r["n_test"] for r in rows if r["dataset"] == dataset and r["n_test"]), "?")
        title = f"### {dataset} (n_test = {n_test}" + (
            f", sweep wall time {wall / 60:.1f} min)" if wall else ")"
        )
        parts.append(title + "\n\n" + markdown_table(headers, cells) + _seed_spread(rows, dataset))
    return "\n".join(parts)


def _seed_spread(rows: Sequence[dict[str, Any]], dataset: str) -> str:
    """The baseline's test AUROC over its seeds (``+ablation=seed_N`` rows): the noise a one-seed delta sits in."""
    runs = [
        value_of(r["test_auroc"])
        for r in rows
        if r["dataset"] == dataset and r["status"] == "ok" and r["factor"] in ("baseline", "seed")
    ]
    runs = [v for v in runs if isinstance(v, float)]
    if len(runs) < 2:
        return ""
    return (
        f"\nBaseline over {len(runs)} seeds: test AUROC mean {statistics.mean(runs):.4f}, "
        f"sd {statistics.stdev(runs):.4f}, range {min(runs):.4f}–{max(runs):.4f}.\n"
    )


def _csv_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for row in rows:
        out = {k: v for k, v in row.items() if not isinstance(v, dict)}
        for key, value in row.items():
            if isinstance(value, dict):
                for part in ("value", "ci_low", "ci_high"):
                    out[f"{key}_{part}" if part != "value" else key] = value.get(part)
        flat.append(out)
    return flat


def write_ablation(
    sweep_dirs: Sequence[Path], out_dir: Path, seconds: Sequence[float] = ()
) -> dict[str, Path]:
    """``seconds`` go with the first sweeps in order. A sweep that is already a light copy inside ``out_dir``
    (a dataset not re-run) is kept as it is, with the wall time recorded for it last time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [row for sweep in sweep_dirs for row in ablation_rows(sweep)]
    previous = out_dir / "ablation.json"
    wall = json.loads(previous.read_text()).get("sweep_seconds", {}) if previous.is_file() else {}
    wall = {sweep.name: wall[sweep.name] for sweep in sweep_dirs if sweep.name in wall}
    wall.update({sweep.name: float(s) for sweep, s in zip(sweep_dirs, seconds, strict=False)})
    for sweep in sweep_dirs:
        if sweep.resolve().parent != out_dir.resolve():
            export_light(sweep, out_dir)
    paths = {
        "md": out_dir / "ablation.md",
        "json": out_dir / "ablation.json",
        "csv": out_dir / "ablation.csv",
    }
    paths["md"].write_text(ablation_markdown(rows, wall))
    paths["json"].write_text(json.dumps({"sweep_seconds": wall, "rows": rows}, indent=2, default=str))
    flat = _csv_rows(rows)
    fields = list(dict.fromkeys(k for row in flat for k in row))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    return paths


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    args = list(sys.argv[1:] if argv is None else argv)
    options = [a for a in args if a.split("=", 1)[0] in ("out", "seconds") and "=" in a]
    sweeps = [Path(a) for a in args if a not in options]
    parsed = OmegaConf.to_container(OmegaConf.from_dotlist(options)) if options else {}
    if not sweeps or "out" not in parsed:
        raise SystemExit(__doc__)
    paths = write_ablation(sweeps, Path(parsed["out"]), parsed.get("seconds") or ())
    print(paths["md"].read_text())
    return paths


if __name__ == "__main__":
    main()
