"""Overlay the per-epoch curves of several runs and tabulate their best epochs.

    python -m deepfake_lightning.compare RUN_OR_SWEEP_DIR... [metrics=[val/auroc,val/loss]] [out=DIR]
    python -m deepfake_lightning.compare wandb://ENTITY/PROJECT/RUN_ID logs/train/runs/... metrics=[val/auroc]

Positional arguments are sources: a run dir (has ``training_history.json``), a sweep dir (each job dir in it
becomes one curve, labelled by the overrides that differ between jobs) or a W&B run path (needs ``wandb
login``). ``key=value`` arguments are options: ``metrics`` (default ``[val/auroc,val/loss]``) and ``out``
(default ``logs/compare/<date>_<time>``). Writes ``curves.png``, ``comparison.md`` and ``comparison.json``.
No Hydra here: nothing to compose, and a tool that only reads runs should not create a run dir of its own.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from deepfake_lightning.evaluation.markdown import fmt, markdown_table
from deepfake_lightning.sweeps.runs import find_job_dirs, load_history, read_job, varying_overrides

DEFAULT_METRICS = ["val/auroc", "val/loss"]
WANDB_PREFIX = "wandb://"
_LOWER_IS_BETTER = ("loss", "eer", "ece", "brier", "seconds")
OPTIONS = ("metrics", "out")


@dataclass
class Curve:
    label: str
    source: str
    history: list[dict[str, Any]]


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in _LOWER_IS_BETTER)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def series(history: Sequence[dict[str, Any]], metric: str) -> tuple[list[int], list[float]]:
    """Epochs and values of one metric, skipping epochs where it is missing or not finite."""
    epochs, values = [], []
    for record in history:
        value = _finite(record.get(metric))
        if value is not None and record.get("epoch") is not None:
            epochs.append(int(record["epoch"]))
            values.append(value)
    return epochs, values


def best_epoch(history: Sequence[dict[str, Any]], metric: str) -> tuple[int, float] | None:
    epochs, values = series(history, metric)
    if not values:
        return None
    pick = min if lower_is_better(metric) else max
    k = values.index(pick(values))
    return epochs[k], values[k]


def wandb_history(path: str, metrics: Sequence[str]) -> Curve:
    """A W&B run's per-epoch values of ``metrics`` (``wandb://entity/project/run_id``; needs an account)."""
    # lazy: wandb costs 4.4 s to import here (-X importtime after torch, load 15); only logger=wandb needs it
    import wandb

    run = wandb.Api().run(path.removeprefix(WANDB_PREFIX))
    by_epoch: dict[int, dict[str, Any]] = {}
    for metric in metrics:
        for row in run.scan_history(keys=["epoch", metric]):
            epoch = int(row["epoch"])
            by_epoch.setdefault(epoch, {"epoch": epoch})[metric] = row[metric]
    return Curve(label=run.name or run.id, source=path, history=[by_epoch[e] for e in sorted(by_epoch)])


def local_curves(path: Path) -> list[Curve]:
    """One curve for a run dir, one per job with a history for a sweep dir."""
    if (path / "training_history.json").is_file():
        return [Curve(label=f"{path.parent.name}/{path.name}", source=str(path), history=load_history(path))]
    records = [read_job(job) for job in find_job_dirs(path)]
    labels = varying_overrides(records)
    curves = []
    for record in records:
        history = load_history(record.dir)
        if history:
            label = f"{path.name}/{record.dir.name}: {labels[record.dir]}"
            curves.append(Curve(label=label, source=str(record.dir), history=history))
    return curves


def load_curves(sources: Sequence[str], metrics: Sequence[str]) -> list[Curve]:
    curves: list[Curve] = []
    for source in sources:
        if source.startswith(WANDB_PREFIX):
            curves.append(wandb_history(source, metrics))
            continue
        path = Path(source)
        if not path.is_dir():
            raise SystemExit(f"compare: {source!r} is neither a run/sweep dir nor a {WANDB_PREFIX} path")
        found = local_curves(path)
        if not found:
            raise SystemExit(f"compare: no training_history.json in {source!r} or in the job dirs under it")
        curves += found
    return curves


def plot_curves(curves: Sequence[Curve], metrics: Sequence[str], path: Path) -> Path:
    # lazy: matplotlib costs 3.1 s to import here (-X importtime after torch, load 15); only the figure needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.5 * len(metrics), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for curve in curves:
            epochs, values = series(curve.history, metric)
            if values:
                (line,) = ax.plot(epochs, values, marker="o", ms=3, lw=1.5, label=curve.label)
                best = best_epoch(curve.history, metric)
                if best is not None:
                    ax.plot(*best, marker="*", ms=11, color=line.get_color())
        ax.set(
            title=f"{metric} ({'lower' if lower_is_better(metric) else 'higher'} is better)", xlabel="epoch"
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    rows = -(-len(curves) // 3)
    fig.tight_layout(rect=(0, min(0.45, 0.07 * rows), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def comparison_rows(curves: Sequence[Curve], metrics: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for curve in curves:
        row: dict[str, Any] = {"run": curve.label, "source": curve.source, "epochs": len(curve.history)}
        for metric in metrics:
            best = best_epoch(curve.history, metric)
            row[metric] = {"best": best[1], "epoch": best[0]} if best else None
        rows.append(row)
    return rows


def comparison_markdown(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    headers = ["run", "epochs", *(f"best {m} (epoch)" for m in metrics)]
    cells = []
    for row in rows:
        best = [f"{fmt(row[m]['best'])} ({row[m]['epoch']})" if row[m] else "n/a" for m in metrics]
        cells.append([row["run"], row["epochs"], *best])
    return markdown_table(headers, cells)


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Sources are the arguments that are not ``metrics=...``/``out=...`` options."""
    sources, options = [], []
    for arg in argv:
        (options if arg.split("=", 1)[0] in OPTIONS and "=" in arg else sources).append(arg)
    parsed = OmegaConf.to_container(OmegaConf.from_dotlist(options)) if options else {}
    metrics = parsed.get("metrics", DEFAULT_METRICS)
    parsed["metrics"] = [metrics] if isinstance(metrics, str) else [str(m) for m in metrics]
    return sources, parsed


def compare(sources: Sequence[str], metrics: Sequence[str], out: str | Path) -> dict[str, Path]:
    curves = load_curves(sources, metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(curves, metrics)
    paths = {"png": plot_curves(curves, metrics, out / "curves.png")}
    title = f"# Curve comparison\n\nSources: {', '.join(f'`{s}`' for s in sources)}\n\n"
    paths["md"] = out / "comparison.md"
    paths["md"].write_text(title + comparison_markdown(rows, metrics))
    paths["json"] = out / "comparison.json"
    paths["json"].write_text(json.dumps({"metrics": list(metrics), "runs": rows}, indent=2))
    return paths


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    sources, options = parse_args(sys.argv[1:] if argv is None else argv)
    if not sources:
        raise SystemExit(__doc__)
    out = options.get("out") or Path("logs/compare") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    paths = compare(sources, options["metrics"], out)
    print(paths["md"].read_text())
    print(f"wrote {paths['png']}, {paths['md']}, {paths['json']}")
    return paths


if __name__ == "__main__":
    main()
