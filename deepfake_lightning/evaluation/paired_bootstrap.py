"""Is model B better than model A on the same test images? A paired bootstrap of the AUROC difference.

Two runs' separate CIs overlap far more often than their difference is uncertain, because both are scored on
the same images: resampling the images once per replicate for both models keeps that pairing. Reals and fakes
are resampled separately (stratified), as in ``metrics.compute_metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _auroc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``scores`` (Mann-Whitney U with average ranks for ties)."""
    order = np.argsort(scores, axis=1, kind="mergesort")
    ranks = np.empty_like(scores)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, scores.shape[1] + 1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    for r in range(scores.shape[0]):  # average the ranks of tied scores
        uniq, start, counts = np.unique(sorted_scores[r], return_index=True, return_counts=True)
        if counts.max() > 1:
            mean_rank = start + (counts + 1) / 2.0
            ranks[r, order[r]] = np.repeat(mean_rank, counts)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    rank_sum = (ranks * labels).sum(axis=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def paired_auroc_delta(
    p_a: Any, p_b: Any, labels: Any, n_bootstrap: int = 1000, seed: int = 0, ci: float = 0.95
) -> dict[str, float]:
    """``AUROC(b) - AUROC(a)`` with a percentile CI and the share of replicates where b is not better."""
    a, b = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    y = np.asarray(labels, dtype=int)
    if not (a.shape == b.shape == y.shape) or y.min() == y.max():
        raise ValueError("paired_auroc_delta: equal-length scores and labels with both classes are needed")
    point = float(_auroc_rows(np.stack([b, a]), np.stack([y, y])) @ np.array([1.0, -1.0]))
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    idx = np.concatenate(
        [rng.choice(pos, (n_bootstrap, pos.size)), rng.choice(neg, (n_bootstrap, neg.size))], axis=1
    )
    labels_bs = y[idx]
    deltas = _auroc_rows(b[idx], labels_bs) - _auroc_rows(a[idx], labels_bs)
    tail = (1 - ci) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    return {
        "value": point,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_not_better": float((deltas <= 0).mean()),
    }
