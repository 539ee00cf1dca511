"""Markdown formatting shared by REPORT.md, robustness.md and cross_dataset.md, so numbers read the same."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """A number with fixed decimals; NaN/None/non-numbers become "n/a" instead of breaking a table."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def fmt_ci(entry: Any, digits: int = 4) -> str:
    """``{"value", "ci_low", "ci_high"}`` -> ``0.9123 [0.9001, 0.9240]`` (the CI is left out when NaN)."""
    if not isinstance(entry, Mapping):
        return fmt(entry, digits)
    value = fmt(entry.get("value"), digits)
    low, high = entry.get("ci_low"), entry.get("ci_high")
    if fmt(low) == "n/a" or fmt(high) == "n/a":
        return value
    return f"{value} [{fmt(low, digits)}, {fmt(high, digits)}]"


def value_of(entry: Any) -> Any:
    """The point estimate of a metric entry, whether stored as a dict or a plain number."""
    return entry.get("value") if isinstance(entry, Mapping) else entry


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


SUMMARY_HEADERS = ("n (real/fake)", "AUROC [95% CI]", "AP", "EER", "accuracy")


def summary_cells(results: Mapping[str, Any]) -> list[str]:
    """The cells of one ``SUMMARY_HEADERS`` row from a ``compute_metrics`` result."""
    n = f"{results.get('n', 'n/a')} ({results.get('n_real', '?')}/{results.get('n_fake', '?')})"
    return [
        n,
        fmt_ci(results.get("auroc")),
        fmt(value_of(results.get("ap"))),
        fmt(value_of(results.get("eer"))),
        fmt(value_of(results.get("accuracy"))),
    ]


def operating_point_note(calibration: Mapping[str, Any]) -> str:
    """One sentence saying where the operating point of accuracy-type numbers came from."""
    fitted = calibration.get("fitted_on")
    origin = (
        f"both chosen on the '{fitted}' split, never on test" if fitted else "defaults, no calibration found"
    )
    return (
        f"Accuracy at threshold {calibration.get('threshold', 0.5):.4g} (rule `{calibration.get('threshold_rule')}`) "
        f"on p_fake = sigmoid(logit / T), T = {calibration.get('temperature', 1.0):.4g}: {origin}. "
        "AUROC/AP/EER do not depend on the threshold."
    )


def cross_dataset_markdown(sets: Mapping[str, Mapping[str, Any]], note: str = "") -> str:
    rows = [[name, *summary_cells(res)] for name, res in sets.items()]
    text = markdown_table(("set", *SUMMARY_HEADERS), rows)
    return text + (f"\n{note}\n" if note else "")


def robustness_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Table of AUROC [CI], its change from clean, and accuracy [CI] per condition."""
    clean = next((value_of(r["auroc"]) for r in rows if r["corruption"] == "clean"), None)
    table = []
    for r in rows:
        auroc = value_of(r["auroc"])
        delta = auroc - clean if isinstance(auroc, float) and isinstance(clean, float) else None
        severity = "-" if r["severity"] is None else f"{r['severity']:g}"
        delta_text = "-" if r["corruption"] == "clean" else fmt(delta)
        table.append(
            [r["corruption"], severity, r["n"], fmt_ci(r["auroc"]), delta_text, fmt_ci(r["accuracy"])]
        )
    return markdown_table(
        ("corruption", "severity", "n", "AUROC [95% CI]", "ΔAUROC", "accuracy [95% CI]"), table
    )
