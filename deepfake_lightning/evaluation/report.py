"""``REPORT.md`` of a run dir, built only from the files in it (and its checkpoint's training run).

Every number is read from ``test_results.json``, the run's calibration record, ``model_info.json``,
``training_history.json``, ``robustness.json`` and ``cross_dataset.json`` -- nothing is recomputed, so a
regenerated report can never disagree with the files it cites.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from deepfake_lightning.bundle import run_calibration
from deepfake_lightning.evaluation.markdown import (
    SUMMARY_HEADERS,
    cross_dataset_markdown,
    fmt,
    fmt_ci,
    markdown_table,
    operating_point_note,
    robustness_markdown,
    summary_cells,
    value_of,
)

REPORT_FILE = "REPORT.md"
RESULT_ROWS = (
    ("auroc", "AUROC"),
    ("ap", "average precision (fake = positive)"),
    ("eer", "equal error rate (lower is better)"),
    ("tpr_at_fpr_0.01", "fakes caught at 1% reals flagged"),
    ("accuracy", "accuracy"),
    ("f1", "F1 (fake)"),
    ("real_detection_rate", "real detection rate (TNR)"),
    ("fake_detection_rate", "fake detection rate (TPR)"),
    ("log_loss", "log loss"),
    ("brier", "Brier score"),
    ("ece", "ECE (15 bins)"),
)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def training_run_dir(run_dir: Path, results: Mapping[str, Any]) -> Path:
    """The run that trained the checkpoint: ``RUN/checkpoints/x.ckpt`` -> ``RUN``; else the run dir itself."""
    checkpoint = results.get("checkpoint")
    if checkpoint:
        candidate = Path(str(checkpoint)).parent.parent
        if (candidate / "training_history.json").is_file() or (candidate / "model_info.json").is_file():
            return candidate
    return run_dir


def _link(run_dir: Path, target: Path, alt: str) -> str | None:
    """Markdown image link relative to the report, or None if the figure was not written."""
    if not target.is_file():
        return None
    return f"![{alt}]({os.path.relpath(target, run_dir)})"


def _figures(run_dir: Path, names: list[tuple[str, str]], base: Path | None = None) -> str:
    links = [_link(run_dir, (base or run_dir) / name, alt) for name, alt in names]
    return "\n".join(link for link in links if link) + "\n" if any(links) else ""


def _monitor(train_dir: Path) -> tuple[str, str]:
    """The checkpoint monitor and mode used in training (``val/auroc``/max unless the config says otherwise)."""
    config_path = train_dir / "config.yaml"
    if config_path.is_file():
        cfg = OmegaConf.load(config_path)
        monitor = OmegaConf.select(cfg, "callbacks.model_checkpoint.monitor", default=None)
        mode = OmegaConf.select(cfg, "callbacks.model_checkpoint.mode", default="max")
        if monitor:
            return str(monitor), str(mode)
    return "val/auroc", "max"


def architecture_section(model: Mapping[str, Any] | None) -> str:
    if not model:
        return "## Architecture\n\nNo model size recorded.\n"
    rows = [
        [
            f"{model.get('parameters', 'n/a'):,}" if isinstance(model.get("parameters"), int) else "n/a",
            f"{model.get('trainable_parameters', 'n/a'):,}"
            if isinstance(model.get("trainable_parameters"), int)
            else "n/a",
            model.get("frozen_tensors", "n/a"),
            fmt(model.get("size_mb_fp32"), 2),
        ]
    ]
    return "## Architecture\n\n" + markdown_table(
        ("parameters", "trainable", "frozen tensors", "size (MB, fp32 params + buffers)"), rows
    )


def training_section(run_dir: Path, train_dir: Path) -> str:
    history = _read_json(train_dir / "training_history.json")
    lines = ["## Training", ""]
    if not history:
        return "\n".join(
            lines + ["No training history found (expected training_history.json in the training run).", ""]
        )
    monitor, mode = _monitor(train_dir)
    scored = [(h[monitor], h["epoch"]) for h in history if isinstance(h.get(monitor), (int, float))]
    scored = [(s, e) for s, e in scored if math.isfinite(s)]
    seconds = sum(float(h.get("epoch_seconds", 0.0)) for h in history)
    lines.append(f"- training run: `{train_dir}`")
    lines.append(f"- epochs trained: {len(history)} (last epoch index {history[-1].get('epoch')})")
    if scored:
        best_score, best_epoch = (max if mode == "max" else min)(scored, key=lambda item: item[0])
        lines.append(
            f"- best epoch (chosen on validation by `{monitor}`, {mode}): {best_epoch} ({monitor} = {fmt(best_score)})"
        )
    lines.append(f"- training wall time (sum of epoch times): {seconds:.1f} s ({seconds / 60:.1f} min)")
    figures = _figures(run_dir, [("training_progress.png", "training progress")], train_dir)
    return "\n".join(lines) + "\n\n" + figures


def data_section(results: Mapping[str, Any]) -> str:
    counts = results.get("data")
    lines = ["## Data", ""]
    if results.get("checkpoint"):
        lines.append(f"- checkpoint: `{results['checkpoint']}`")
    if isinstance(counts, Mapping):
        rows = [
            [split, c.get("real", "n/a"), c.get("fake", "n/a")]
            for split, c in counts.items()
            if isinstance(c, Mapping)
        ]
        lines.append("- images per split of the data config (before unreadable files are skipped):\n")
        lines.append(markdown_table(("split", "real", "fake"), rows))
    return "\n".join(lines) + "\n"


def skipped_note(run_dir: Path) -> str:
    """Unreadable images dropped by the loaders (``skipped_images.json``), which the test n excludes."""
    skipped = _read_json(run_dir / "skipped_images.json")
    if not skipped:
        return ""
    counts = ", ".join(f"{len(paths)} in {stage}" for stage, paths in sorted(skipped.items()))
    return f"- unreadable images skipped: {counts} (listed in skipped_images.json)\n"


def results_section(run_dir: Path, results: Mapping[str, Any], calibration: Mapping[str, Any]) -> str:
    head = (
        f"## Results (test split, n = {results.get('n')}: {results.get('n_real')} real, {results.get('n_fake')} fake)\n\n"
        f"Point estimates with {fmt(100 * results.get('ci_level', math.nan), 0)}% stratified bootstrap CIs "
        f"({results.get('n_bootstrap')} replicates). {operating_point_note(calibration)}\n\n"
    )
    rows = [[label, fmt_ci(results.get(key))] for key, label in RESULT_ROWS if key in results]
    figures = _figures(
        run_dir,
        [
            ("performance_summary.png", "performance summary"),
            ("roc.png", "ROC"),
            ("pr.png", "precision-recall"),
            ("score_hist.png", "score histogram"),
        ],
    )
    return head + markdown_table(("metric", "value [95% CI]"), rows) + "\n" + figures


GROUP_ROWS = RESULT_ROWS[:8]  # ranking and thresholded metrics; log loss, Brier and ECE are per frame only


def group_level_sections(run_dir: Path, results: Mapping[str, Any]) -> str:
    """`eval.aggregate_by`: each group (video) scored as a whole, beside the frame-level numbers."""
    sections = []
    for key, level in results.items():
        if not (key.endswith("_level") and isinstance(level, Mapping) and "aggregate_by" in level):
            continue
        column, method = level["aggregate_by"], level.get("aggregate")
        rule = f"top-{level.get('top_k')} mean" if method == "top_k_mean" else method
        spread = level.get("frames_per_group") or {}
        head = (
            f"## Results per {column} (`{key}`: n = {level.get('n')} {column}s, {level.get('n_real')} real, "
            f"{level.get('n_fake')} fake)\n\n"
            f"Each {column} scored by the {rule} of its frames' p_fake (the rule `predict_video` applies); "
            f"{level.get('n_frames')} frames, {spread.get('min')}-{spread.get('max')} per {column}. CIs "
            f"resample {column}s ({level.get('n_bootstrap')} replicates), so they are wider than the frame "
            f"ones; the threshold {fmt(level.get('threshold'))} is the frame-level one.\n\n"
        )
        rows = [
            [label, fmt_ci(results.get(name)), fmt_ci(level.get(name))]
            for name, label in GROUP_ROWS
            if name in level
        ]
        table = markdown_table(("metric", "per frame", f"per {column}"), rows)
        figures = _figures(run_dir, [(f"roc_{column}.png", f"ROC per {column}")])
        sections.append(head + table + "\n" + figures)
    return "\n".join(sections)


def confusion_section(run_dir: Path, results: Mapping[str, Any]) -> str:
    counts = results.get("confusion_counts") or {}
    tn, fp, fn, tp = (int(counts.get(k, 0)) for k in ("tn", "fp", "fn", "tp"))
    n_real, n_fake = tn + fp, fn + tp

    def rate(k: int, n: int) -> str:
        return f"{k} ({k / n:.1%})" if n else f"{k} (n/a)"

    table = markdown_table(
        ("true \\ predicted", "real", "fake"),
        [
            [f"real (n={n_real})", rate(tn, n_real), rate(fp, n_real)],
            [f"fake (n={n_fake})", rate(fn, n_fake), rate(tp, n_fake)],
        ],
    )
    threshold = fmt(results.get("threshold"))
    text = (
        f"At threshold {threshold}: {rate(fp, n_real)} of {n_real} real images are flagged as fake (false "
        f"positives) and {rate(fn, n_fake)} of {n_fake} fakes are missed (false negatives). "
    )
    text += (
        f"A fake flag is right {tp / (tp + fp):.1%} of the time (precision)."
        if tp + fp
        else "Nothing is flagged."
    )
    figures = _figures(run_dir, [("confusion_matrix.png", "confusion matrix")])
    return "## Confusion matrix\n\n" + table + "\n" + text + "\n\n" + figures


def calibration_section(run_dir: Path, results: Mapping[str, Any], calibration: Mapping[str, Any]) -> str:
    lines = ["## Calibration and threshold", ""]
    if calibration.get("fitted_on"):
        lines.append(
            f"- temperature T = {fmt(calibration.get('temperature'))}, fitted on the `{calibration['fitted_on']}` "
            f"split (n = {calibration.get('n', 'n/a')}) by minimising NLL; there NLL {fmt(calibration.get('nll_before'))} "
            f"-> {fmt(calibration.get('nll_after'))}, ECE {fmt(calibration.get('ece_before'))} -> "
            f"{fmt(calibration.get('ece_after'))}."
        )
        lines.append(
            f"- threshold {fmt(calibration.get('threshold'))} chosen on the same validation scores by rule "
            f"`{calibration.get('threshold_rule')}` and applied unchanged to test."
        )
        if calibration.get("source"):
            lines.append(f"- read from `{calibration['source']}`")
    else:
        lines.append("- no calibration fitted: raw sigmoid scores (T = 1) and the configured threshold.")
    raw = results.get("uncalibrated") or {}
    if raw:
        lines.append(
            f"- on test: ECE {fmt(raw.get('ece'))} (T = 1) -> {fmt(value_of(results.get('ece')))} (T = "
            f"{fmt(results.get('temperature'))}); log loss {fmt(raw.get('log_loss'))} -> "
            f"{fmt(value_of(results.get('log_loss')))}."
        )
    # validation reliability: this run's own fit (train, or eval with refit), else the checkpoint run's
    source = Path(str(calibration["source"])).parent if calibration.get("source") else run_dir
    fit_dir = run_dir if (run_dir / "reliability.png").is_file() else source
    figures = _figures(run_dir, [("reliability.png", "validation reliability")], fit_dir)
    figures += _figures(run_dir, [("test_reliability.png", "test reliability")])
    return "\n".join(lines) + "\n\n" + figures


def per_value_section(results: Mapping[str, Any]) -> str:
    """``per_<column>`` results (``per_source`` under ``data=multi``): one row per value, then the pooled row."""
    sections = []
    for key, groups in results.items():
        if not key.startswith("per_") or not isinstance(groups, Mapping):
            continue
        column = key.removeprefix("per_")
        rows = [[name, *summary_cells(res)] for name, res in {**groups, "pooled": results}.items()]
        sections.append(
            f"## Per {column}\n\nThe test metrics of each {column}'s images alone, at the same temperature and "
            f"threshold; the pooled row is all of them (`test_results.json` `{key}`).\n\n"
            + markdown_table((column, *SUMMARY_HEADERS), rows)
        )
    return "\n".join(sections)


def cross_dataset_section(run_dir: Path) -> str:
    data = _read_json(run_dir / "cross_dataset.json")
    if not data:
        return ""
    return "## Cross-dataset\n\n" + cross_dataset_markdown(data.get("sets", {})) + "\n"


def robustness_section(run_dir: Path) -> str:
    data = _read_json(run_dir / "robustness.json")
    if not data:
        return ""
    figures = _figures(run_dir, [("robustness.png", "robustness")])
    return (
        "## Robustness (test split under corruptions)\n\n"
        + robustness_markdown(data["results"])
        + "\n"
        + figures
    )


def explanations_section(run_dir: Path) -> str:
    figures = _figures(run_dir, [("explanations.png", "explanations")])
    if not figures:
        return ""
    return (
        "## Explanations\n\nSampled test images per outcome; attention and Grad-CAM (for the predicted class) "
        "overlays. The attention map is divided by its own maximum, so a flat map is drawn flat and its title "
        "says `(flat)` (docs/attention.md); Grad-CAM is scaled to its own min-max.\n\n" + figures
    )


def build_report(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    results = _read_json(run_dir / "test_results.json")
    if results is None:
        raise FileNotFoundError(
            f"{run_dir / 'test_results.json'} not found: run eval (or train with test=true) first"
        )
    train_dir = training_run_dir(run_dir, results)
    calibration = (
        results.get("calibration")
        or run_calibration(run_dir)
        or {
            "temperature": results.get("temperature", 1.0),
            "threshold": results.get("threshold"),
            "threshold_rule": "configured",
        }
    )
    model = results.get("model") or (_read_json(train_dir / "model_info.json") or {}).get("model")
    sections = [
        f"# Report: {run_dir.name}\n\nGenerated by `python -m deepfake_lightning.report {run_dir}` from the files "
        "in this directory; fake is the positive class.\n",
        data_section(results) + skipped_note(run_dir),
        architecture_section(model),
        training_section(run_dir, train_dir),
        results_section(run_dir, results, calibration),
        group_level_sections(run_dir, results),
        per_value_section(results),
        confusion_section(run_dir, results),
        calibration_section(run_dir, results, calibration),
        cross_dataset_section(run_dir),
        robustness_section(run_dir),
        explanations_section(run_dir),
    ]
    return "\n".join(section for section in sections if section)


def write_report(run_dir: str | Path) -> Path:
    path = Path(run_dir) / REPORT_FILE
    path.write_text(build_report(run_dir))
    return path
