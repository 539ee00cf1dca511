"""The validation score distribution a bundle records: what a deployed model's live scores are compared with.

`score_distribution(logits)` is written by train (the best checkpoint on its validation split) and by eval
when it refits the calibration (that data's validation split); the service's drift monitor
(`inference/drift.py`) reads it back from the bundle.

It is a histogram of validation LOGITS on the deciles of those logits: `logit_cuts`, the inner bin edges (bin i
holds cuts[i-1] < logit <= cuts[i]; the outer two are open), and the number of validation images in each bin. Why logits rather than p_fake: p_fake
= sigmoid(logit / T) depends on the temperature, which eval may refit and a server may switch off
(`calibration=none`); the drift monitor maps the cuts through the temperature it applies, so one record serves
every calibration. Why deciles rather than equal-width bins: a trained detector puts most scores near 0 and 1,
where equal-width bins would hold almost everything in two bins; on deciles each bin holds a tenth of
validation, the usual layout of the population stability index. The cuts are validation logits themselves (the
sample's deciles, no interpolation between two images), so no bin is empty, and ties (many equal logits) merge
cuts: a small or tied validation split gives fewer than 10 bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfake_lightning.bundle.errors import BundleError

BINS = 10


def score_distribution(logits: Any, split: str = "valid", bins: int = BINS) -> dict[str, Any]:
    """`{"split", "n", "bins", "logit_cuts", "counts"}` of the finite values in `logits`."""
    values = np.asarray(logits, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"no finite {split} logits to record a score distribution from")
    cuts = np.unique(np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf"))
    cuts = cuts[cuts < values.max()]  # the top bin holds what lies above the last cut: never empty
    counts = np.bincount(np.searchsorted(cuts, values, side="left"), minlength=cuts.size + 1)
    return {
        "split": split,
        "n": int(values.size),
        "bins": "deciles of the logits",
        "logit_cuts": [float(c) for c in cuts],
        "counts": [int(c) for c in counts],
    }


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value
    )


def check_score_distribution(record: Any, where: str) -> dict[str, Any]:
    """`record` as `score_distribution` writes it, or a `BundleError` naming `where` (the manifest)."""
    expected = "expected {split, n, logit_cuts (increasing numbers), counts (one more, summing to n)}"
    if not isinstance(record, dict):
        raise BundleError(f"{where}: validation_scores {record!r}; {expected}")
    cuts, counts, n = record.get("logit_cuts"), record.get("counts"), record.get("n")
    ok = (
        _numbers(cuts)
        and _numbers(counts)
        and len(counts) == len(cuts) + 1
        and all(isinstance(c, int) and c >= 0 for c in counts)
        and all(a < b for a, b in zip(cuts[:-1], cuts[1:], strict=True))
        and isinstance(n, int)
        and n == sum(counts) > 0
    )
    if not ok:
        shown = {k: record.get(k) for k in ("n", "logit_cuts", "counts")}
        raise BundleError(f"{where}: validation_scores {shown}; {expected}")
    return record
