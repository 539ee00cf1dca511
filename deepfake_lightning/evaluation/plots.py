"""PNG figure writers for evaluation reports.

Figures are built with ``matplotlib.figure.Figure`` + the Agg canvas instead of ``pyplot``: no global
backend switch, no global figure registry to leak, and safe on headless training nodes. Every writer
returns the written path and tolerates missing keys/NaNs by drawing less rather than raising.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepfake_lightning.evaluation.metrics import (
    ECE_BINS,
    TPR_AT_FPR,
    compute_metrics,
    expected_calibration_error,
    operating_points,
    reliability_bins,
    validate_scores,
)

_DPI = 120
_REAL_COLOR = "tab:blue"
_FAKE_COLOR = "tab:red"
SUMMARY_METRICS = (
    "auroc",
    "ap",
    "accuracy",
    "f1",
    "real_detection_rate",
    "fake_detection_rate",
    "tpr_at_fpr_0.01",
    "eer",
)
# what Lightning logs per epoch: threshold metrics at an uncalibrated 0.5, named so (modules/stage_metrics.py)
CURVE_KEYS = ("loss", "auroc", "accuracy@0.5", "f1@0.5")


def _new_figure(width: float = 6.0, height: float = 5.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _note(ax: Axes, text: str, **style: Any) -> None:
    """Text in the middle of a panel: an empty panel says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, **style)


def _nothing_to_plot(fig: Figure, text: str, path: str | Path) -> Path:
    ax = fig.add_subplot()
    _note(ax, text)
    ax.set_axis_off()
    return _save(fig, path)


def plot_confusion_matrix(cm: Any, path: str | Path, title: str = "Confusion matrix") -> Path:
    """Counts with row-normalised rates; accepts ``[[tn, fp], [fn, tp]]`` or ``{"tn", "fp", "fn", "tp"}``."""
    if isinstance(cm, Mapping):
        cm = [[cm.get("tn", 0), cm.get("fp", 0)], [cm.get("fn", 0), cm.get("tp", 0)]]
    counts = np.asarray(cm, dtype=np.float64).reshape(2, 2)
    row_sums = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
    fig = _new_figure(5.0, 4.5)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    for i in range(2):
        for j in range(2):
            color = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n({rates[i, j]:.1%})", ha="center", va="center", color=color)
    ax.set_xticks([0, 1], labels=["real", "fake"])
    ax.set_yticks([0, 1], labels=["real", "fake"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def plot_roc(p_fake: Any, labels: Any, path: str | Path, title: str = "ROC") -> Path:
    """ROC with AUROC, the EER point and the FPR budget used for TPR@FPR."""
    ops = operating_points(p_fake, labels)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    if ops.n_pos and ops.n_neg:
        m = compute_metrics(p_fake, labels, n_bootstrap=0)
        ax.plot(ops.fpr, ops.tpr, color=_FAKE_COLOR, lw=2, label=f"AUROC = {m['auroc']['value']:.4f}")
        k = int(np.flatnonzero(ops.thresholds == m["eer_threshold"])[0])
        ax.plot(ops.fpr[k], ops.tpr[k], "ko", label=f"EER = {m['eer']['value']:.4f}")
        ax.axvline(TPR_AT_FPR, color="grey", lw=0.8, ls=":", label=f"FPR = {TPR_AT_FPR:g}")
    else:
        ax.text(0.5, 0.5, "ROC undefined: one class only", ha="center", transform=ax.transAxes)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate (reals flagged)",
        ylabel="true positive rate (fakes caught)",
        title=title,
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(
    p_fake: Any, labels: Any, path: str | Path, title: str = "Precision-recall (fake = positive)"
) -> Path:
    """PR curve with AP and the prevalence baseline that AP should be compared against."""
    ops = operating_points(p_fake, labels)
    fig = _new_figure()
    ax = fig.add_subplot()
    if ops.n_pos and ops.n_neg:
        ap = compute_metrics(p_fake, labels, n_bootstrap=0)["ap"]["value"]
        ax.step(ops.tpr, ops.precision, where="pre", color=_FAKE_COLOR, lw=2, label=f"AP = {ap:.4f}")
        prevalence = ops.n_pos / (ops.n_pos + ops.n_neg)
        ax.axhline(prevalence, ls="--", color="grey", lw=1, label=f"prevalence = {prevalence:.3f}")
        ax.legend(loc="lower left")
    else:
        ax.text(0.5, 0.5, "PR curve undefined: one class only", ha="center", transform=ax.transAxes)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (fakes caught)", ylabel="precision", title=title)
    return _save(fig, path)


def plot_reliability(
    p_before: Any,
    p_after: Any | None,
    labels: Any,
    path: str | Path,
    n_bins: int = ECE_BINS,
    title: str = "Reliability diagram",
) -> Path:
    """Reliability diagram before/after temperature scaling, with per-bin counts underneath."""
    fig = _new_figure(6.0, 6.5)
    top = fig.add_subplot(3, 1, (1, 2))
    bottom = fig.add_subplot(3, 1, 3, sharex=top)
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    curves = [("uncalibrated", p_before, "tab:orange")]
    if p_after is not None:
        curves.append(("temperature-scaled", p_after, "tab:green"))
    width = 1.0 / n_bins
    for offset, (name, p, color) in enumerate(curves):
        bins = reliability_bins(p, labels, n_bins)
        ece = expected_calibration_error(p, labels, n_bins)
        ok = bins["count"] > 0
        top.plot(
            bins["confidence"][ok],
            bins["frac_fake"][ok],
            "o-",
            color=color,
            label=f"{name} (ECE = {ece:.4f})",
        )
        left = np.minimum(bins["edges"], 1.0 - width)  # the extra last bin (p == 1) is drawn over the top bin
        bar_x = left[ok] + width * (0.25 + 0.5 * offset)
        bottom.bar(bar_x, bins["count"][ok], width=width / 2, color=color, alpha=0.7)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed fraction fake", title=title)
    top.legend(loc="upper left")
    bottom.set(xlabel="predicted p_fake", ylabel="count")
    return _save(fig, path)


def plot_score_hist(
    p_fake: Any, labels: Any, path: str | Path, threshold: float | None = 0.5, bins: int = 50
) -> Path:
    """Overlaid p_fake histograms of reals and fakes (density), with the decision threshold."""
    p, y = validate_scores(p_fake, labels)
    fig = _new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    edges = np.linspace(0.0, 1.0, bins + 1)
    for value, name, color in ((0, "real", _REAL_COLOR), (1, "fake", _FAKE_COLOR)):
        scores = p[y == value]
        if scores.size:
            ax.hist(
                scores, bins=edges, density=True, alpha=0.5, color=color, label=f"{name} (n={scores.size})"
            )
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold = {threshold:.3g}")
    ax.set(xlim=(0, 1), xlabel="p_fake", ylabel="density", title="Score distribution")
    ax.legend(loc="upper center")
    return _save(fig, path)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(x, y) for a logged key, falling back to Lightning's ``<key>_epoch`` name; skips missing/NaN epochs."""
    xs, ys = [], []
    for i, row in enumerate(history):
        value = row.get(key, row.get(f"{key}_epoch"))
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value):
            xs.append(float(row.get("epoch", i)))
            ys.append(value)
    return xs, ys


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One panel per metric among loss/auroc/accuracy/f1 that was logged, train vs val per epoch."""
    panels = []
    for name in CURVE_KEYS:
        lines = [(split, *_series(history, f"{split}/{name}")) for split in ("train", "val")]
        lines = [line for line in lines if line[1]]
        if lines:
            panels.append((name, lines))
    fig = _new_figure(4.5 * max(1, len(panels)), 4.0)
    if not panels:
        return _nothing_to_plot(fig, "no training history logged", path)
    for k, (name, lines) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), k)
        for split, xs, ys in lines:
            ax.plot(xs, ys, "o-", ms=3, label=split)
        ax.set(xlabel="epoch", title=name)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_performance_summary(
    metrics: Mapping[str, Any], path: str | Path, title: str = "Test performance"
) -> Path:
    """Bars of the main ``compute_metrics`` entries with their bootstrap CIs (plain floats: no error bar)."""
    names, values, err_low, err_high = [], [], [], []
    for name in SUMMARY_METRICS:
        entry = metrics.get(name)
        if isinstance(entry, Mapping):
            value, lo, hi = (float(entry.get(k, math.nan)) for k in ("value", "ci_low", "ci_high"))
        elif isinstance(entry, (int, float)):
            value, lo, hi = float(entry), math.nan, math.nan
        else:
            continue
        if not math.isfinite(value):
            continue
        names.append(name)
        values.append(value)
        err_low.append(value - lo if math.isfinite(lo) else 0.0)
        err_high.append(hi - value if math.isfinite(hi) else 0.0)
    fig = _new_figure(max(5.0, 1.0 * len(names) + 2.0), 4.5)
    ax = fig.add_subplot()
    if names:
        x = np.arange(len(names))
        yerr = np.clip(np.array([err_low, err_high]), 0.0, None)  # a CI need not contain the point estimate
        bars = ax.bar(
            x, values, yerr=yerr, capsize=4, color=["tab:purple" if n == "eer" else "tab:blue" for n in names]
        )
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=6, fontsize=8)
        ax.set_xticks(x, labels=names, rotation=30, ha="right")
    else:
        _note(ax, "no metrics to show")
    level = metrics.get("ci_level")
    ci_text = f" ({level:.0%} bootstrap CI)" if isinstance(level, (int, float)) else ""
    ax.set(ylim=(0, 1.1), ylabel="value (EER: lower is better)", title=f"{title}{ci_text}")
    return _save(fig, path)


def plot_robustness(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One panel per corruption: AUROC (with bootstrap CI) and accuracy from clean to the harshest severity."""
    clean = next((r for r in rows if r.get("corruption") == "clean"), None)
    names = list(dict.fromkeys(r["corruption"] for r in rows if r.get("corruption") != "clean"))
    fig = _new_figure(3.2 * max(1, len(names)), 3.8)
    if not names:
        return _nothing_to_plot(fig, "no corruptions evaluated", path)
    for k, name in enumerate(names, start=1):
        ax = fig.add_subplot(1, len(names), k)
        series = ([clean] if clean else []) + [r for r in rows if r.get("corruption") == name]
        labels = ["clean" if r["corruption"] == "clean" else f"{r['severity']:g}" for r in series]
        x = np.arange(len(series))
        for key, style, color in (("auroc", "o-", _FAKE_COLOR), ("accuracy", "s--", "tab:grey")):
            entries = [r.get(key) or {} for r in series]
            values = np.array([float(e.get("value", math.nan)) for e in entries])
            low = np.array([float(e.get("ci_low", math.nan)) for e in entries])
            high = np.array([float(e.get("ci_high", math.nan)) for e in entries])
            yerr = np.clip(np.nan_to_num(np.array([values - low, high - values])), 0.0, None)
            ax.errorbar(
                x,
                values,
                yerr=yerr if key == "auroc" else None,
                fmt=style,
                color=color,
                capsize=3,
                ms=4,
                label=key,
            )
        ax.set_xticks(x, labels=labels)
        ax.set(ylim=(0, 1.02), xlabel="severity", title=name)
        ax.grid(alpha=0.3)
        if k == 1:
            ax.set_ylabel("test metric")
            ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_explanations(groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], path: str | Path) -> Path:
    """One row per group; each sample is three panels: image, attention overlay, Grad-CAM overlay.

    A sample is ``{"image": HxWx3 in [0, 1], "attention": HxW in [0, 1] or None, "gradcam": HxW, "caption"}``;
    an optional ``"<map>_title"`` replaces the panel's default title.
    """
    per_row = max([len(samples) for _, samples in groups] + [1])
    fig = _new_figure(2.0 * 3 * per_row, 2.3 * max(1, len(groups)))
    for r, (title, samples) in enumerate(groups):
        for s in range(per_row):
            sample = samples[s] if s < len(samples) else None
            for c, (key, name) in enumerate(
                (("image", "image"), ("attention", "attention"), ("gradcam", "Grad-CAM"))
            ):
                ax = fig.add_subplot(len(groups), 3 * per_row, r * 3 * per_row + s * 3 + c + 1)
                ax.set_xticks([])
                ax.set_yticks([])
                if sample is None:
                    ax.set_axis_off()
                    if s == 0 and c == 0:
                        _note(ax, "no such image")
                    continue
                ax.imshow(sample["image"])
                heat = sample.get(key) if key != "image" else None
                if heat is not None:
                    ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
                elif key != "image":
                    _note(ax, "n/a", color="white")
                ax.set_title(
                    sample["caption"] if key == "image" else sample.get(f"{key}_title", name), fontsize=7
                )
                if s == 0 and c == 0:
                    ax.set_ylabel(title, fontsize=8)
    return _save(fig, path)


def plot_auroc_matrix(
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[Mapping[str, Any] | None]],
    path: str | Path,
) -> Path:
    """Train set (rows) x test set (columns) heatmap of AUROC, each cell annotated with its 95% CI."""
    values = np.array(
        [[np.nan if c is None else float(c.get("value", np.nan)) for c in row] for row in cells], dtype=float
    )
    fig = _new_figure(1.9 * len(columns) + 2.5, 0.9 * len(rows) + 1.8)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="RdYlGn", vmin=0.5, vmax=1.0)
    fig.colorbar(image, ax=ax, label="test AUROC")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("tested on (its test split)")
    ax.set_ylabel("trained on")
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            if cell is None:
                continue
            text = f"{cell['value']:.3f}\n[{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_title("Cross-dataset AUROC (95% bootstrap CI)")
    return _save(fig, path)


def plot_unseen_means(unseen: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """One bar per model: mean test AUROC over the sets it never trained on, the minimum as a dot, chance at 0.5."""
    rows = [(name, u) for name, u in unseen.items() if u.get("mean") is not None]
    fig = _new_figure(7.5, 0.45 * len(rows) + 1.8)
    if not rows:
        return _nothing_to_plot(fig, "no row has a set it never trained on", path)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    means = [float(u["mean"]) for _, u in rows]
    bars = ax.barh(y, means, color=["tab:green" if m >= 0.75 else "tab:grey" for m in means])
    ax.plot([float(u["min"]) for _, u in rows], y, "k|", ms=12, label="minimum over unseen sets")
    ax.bar_label(bars, labels=[f"{m:.3f}" for m in means], padding=3, fontsize=8)
    ax.axvline(0.5, color="tab:red", ls="--", lw=1, label="chance")
    ax.set_yticks(y, labels=[name for name, _ in rows])
    ax.invert_yaxis()
    ax.set(xlim=(0.3, 1.05), xlabel="test AUROC on sets never trained on (mean; | = minimum)")
    ax.set_title("Does it catch a kind of fake it never saw?")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
