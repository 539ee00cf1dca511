"""Detection metrics with bootstrap confidence intervals -- the single metrics module for train, eval and reports.

Conventions: fake is the positive class (label 1), scores are ``p_fake`` in [0, 1] and a sample is predicted
fake iff ``p_fake >= threshold``.

Why numpy and not torchmetrics here: 1000 bootstrap replicates x 11 metrics through torchmetrics costs tens of
seconds at n=20k. Instead the scores are sorted *once*, every replicate is reduced to per-score-group counts
with one ``bincount``, and all ranking metrics follow from cumulative sums of those counts. Definitions match
torchmetrics (``binary_auroc``, ``binary_average_precision``, ``BinaryEER``, ``BinaryCalibrationError(n_bins=15,
norm="l1")``) and scikit-learn; ``tests/test_eval_metrics.py`` checks both.

The bootstrap is a *stratified* percentile bootstrap: reals and fakes are resampled separately with their own
sizes, so every replicate keeps ``n_real``/``n_fake`` (no replicate loses a class, which would make AUROC/EER
undefined) -- the usual choice for a fixed, labelled test set.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfake_lightning.utils.config_schema import check_threshold

CURVE_METRICS = ("auroc", "ap", "eer", "tpr_at_fpr_0.01")
THRESHOLD_METRICS = ("accuracy", "f1", "real_detection_rate", "fake_detection_rate")
PROBABILITY_METRICS = ("log_loss", "brier", "ece")
METRIC_NAMES = CURVE_METRICS + THRESHOLD_METRICS + PROBABILITY_METRICS
"""Every metric that ``compute_metrics`` returns as ``{"value", "ci_low", "ci_high"}``."""

TPR_AT_FPR = 0.01
ECE_BINS = 15
_LOG_EPS = float(np.finfo(np.float64).eps)  # same clipping as sklearn.metrics.log_loss
_CHUNK_ELEMENTS = 2_000_000  # bootstrap replicates are processed in chunks of ~this many resampled samples


class UndefinedMetricWarning(UserWarning):
    """A metric is NaN because the labels do not allow it (e.g. only one class present)."""


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """Flatten tensors/arrays/lists into a 1-D numpy array so every caller accepts the same inputs."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype).reshape(-1)


def validate_scores(p_fake: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(p_fake float64, labels int64)`` or raise a ValueError that says what is wrong with the input."""
    p = to_numpy(p_fake)
    y_raw = to_numpy(labels)
    if p.size != y_raw.size:
        raise ValueError(
            f"p_fake and labels must have the same length, got len(p_fake)={p.size} and len(labels)={y_raw.size}"
        )
    if p.size == 0:
        raise ValueError("p_fake and labels are empty: cannot compute metrics on zero samples")
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            f"p_fake must be probabilities in [0, 1] (apply sigmoid to logits first); got min={np.nanmin(p):.4g}, "
            f"max={np.nanmax(p):.4g}, non-finite={int((~np.isfinite(p)).sum())}"
        )
    if not np.all((y_raw == 0) | (y_raw == 1)):
        raise ValueError(f"labels must be 0 (real) or 1 (fake); got values {np.unique(y_raw)[:10].tolist()}")
    return p, y_raw.astype(np.int64)


@dataclass(frozen=True)
class OperatingPoints:
    """All distinct operating points of a score, from "nothing flagged" to "everything flagged".

    ``thresholds`` is descending; at ``thresholds[k]`` the detector flags ``tp[k]`` fakes and ``fp[k]`` reals
    (rule ``p_fake >= t``). ``thresholds[0]`` is just above the top score (flags nothing), so it may exceed 1.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def tpr(self) -> np.ndarray:
        return self.tp / self.n_pos if self.n_pos else np.full(self.tp.shape, np.nan)

    @property
    def fpr(self) -> np.ndarray:
        return self.fp / self.n_neg if self.n_neg else np.full(self.fp.shape, np.nan)

    @property
    def precision(self) -> np.ndarray:
        """Precision per point; 1.0 where nothing is flagged (the sklearn/torchmetrics convention)."""
        flagged = self.tp + self.fp
        return np.divide(self.tp, flagged, out=np.ones(self.tp.shape), where=flagged > 0)


def _score_groups(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per sample (0 = highest distinct score) and the distinct scores in descending order."""
    uniq = np.unique(p)[::-1]
    gid = (uniq.size - 1) - np.searchsorted(uniq[::-1], p)
    return gid, uniq


def _thresholds(uniq: np.ndarray) -> np.ndarray:
    """Descending operating thresholds, starting just above the top score ("flag nothing")."""
    return np.concatenate([[np.nextafter(uniq[0], np.inf)], uniq])


def operating_points(p_fake: Any, labels: Any) -> OperatingPoints:
    """ROC/PR operating points; shared by metrics, threshold selection and plots so they all agree on ties."""
    p, y = validate_scores(p_fake, labels)
    gid, uniq = _score_groups(p)
    pos = np.bincount(gid, weights=y, minlength=uniq.size)
    neg = np.bincount(gid, weights=1 - y, minlength=uniq.size)
    return OperatingPoints(
        thresholds=_thresholds(uniq),
        tp=np.concatenate([[0.0], np.cumsum(pos)]),
        fp=np.concatenate([[0.0], np.cumsum(neg)]),
        n_pos=int(y.sum()),
        n_neg=int(y.size - y.sum()),
    )


def _curve_metrics(pos: np.ndarray, neg: np.ndarray, n_pos: int, n_neg: int) -> dict[str, np.ndarray]:
    """Ranking metrics for a batch of replicates from per-score-group counts of shape (B, G), groups descending.

    AUROC counts ties as 1/2 (Mann-Whitney == trapezoidal ROC area), AP is the step-wise sum of
    precision x recall increments (sklearn ``average_precision_score``), EER is (FPR + FNR) / 2 at the operating
    point minimising |FPR - FNR| (torchmetrics ``BinaryEER``), TPR@FPR is the best TPR with FPR <= 1%.
    """
    zeros = np.zeros((pos.shape[0], 1))
    tp = np.cumsum(pos, axis=1)
    fp = np.cumsum(neg, axis=1)
    auroc = (neg * (tp - 0.5 * pos)).sum(axis=1) / (n_pos * n_neg)
    flagged = tp + fp
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    ap = (pos * precision).sum(axis=1) / n_pos
    tpr = np.concatenate([zeros, tp / n_pos], axis=1)
    fpr = np.concatenate([zeros, fp / n_neg], axis=1)
    eer_idx = np.argmin(np.abs(fpr - (1.0 - tpr)), axis=1)
    rows = np.arange(tpr.shape[0])
    eer = (fpr[rows, eer_idx] + 1.0 - tpr[rows, eer_idx]) / 2.0
    tpr_at = np.where(fpr <= TPR_AT_FPR + 1e-12, tpr, 0.0).max(axis=1)
    return {"auroc": auroc, "ap": ap, "eer": eer, "tpr_at_fpr_0.01": tpr_at, "_eer_idx": eer_idx}


def _threshold_metrics(tp: np.ndarray, fp: np.ndarray, n_pos: int, n_neg: int) -> dict[str, np.ndarray]:
    """Metrics at the fixed threshold from counts of flagged fakes (tp) and flagged reals (fp) per replicate."""
    fn = n_pos - tp
    tn = n_neg - fp
    f1_den = 2 * tp + fp + fn
    nan = np.full(tp.shape, np.nan)
    return {
        "accuracy": (tp + tn) / (n_pos + n_neg),
        "f1": np.divide(
            2 * tp, f1_den, out=np.zeros(tp.shape), where=f1_den > 0
        ),  # 0 when undefined, as sklearn
        "real_detection_rate": tn / n_neg if n_neg else nan,
        "fake_detection_rate": tp / n_pos if n_pos else nan,
    }


def _ece_bin_ids(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index per sample, identical to torchmetrics' bucketize (p == 1.0 gets its own last bin)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges, p, side="right") - 1


def reliability_bins(p_fake: Any, labels: Any, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per-bin count, mean p_fake and observed fake fraction (NaN for empty bins) for reliability diagrams."""
    p, y = validate_scores(p_fake, labels)
    ids = _ece_bin_ids(p, n_bins)
    count = np.bincount(ids, minlength=n_bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(ids, weights=p, minlength=n_bins + 1) / count
        frac_fake = np.bincount(ids, weights=y, minlength=n_bins + 1) / count
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "count": count,
        "confidence": confidence,
        "frac_fake": frac_fake,
    }


def expected_calibration_error(p_fake: Any, labels: Any, n_bins: int = ECE_BINS) -> float:
    """ECE (l1, equal-width bins) == torchmetrics ``BinaryCalibrationError(n_bins, norm="l1")``."""
    p, y = validate_scores(p_fake, labels)
    ids = _ece_bin_ids(p, n_bins)
    return float(np.abs(np.bincount(ids, weights=p - y)).sum() / p.size)


def _percentile_ci(samples: np.ndarray, ci: float) -> tuple[float, float]:
    if samples.size == 0 or np.all(np.isnan(samples)):
        return math.nan, math.nan
    lo, hi = np.nanpercentile(samples, [50.0 * (1.0 - ci), 50.0 * (1.0 + ci)])
    return float(lo), float(hi)


def compute_metrics(
    p_fake: Any,
    labels: Any,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """All detection metrics with seeded stratified percentile-bootstrap CIs (``n_bootstrap=0``: CIs are NaN).

    Every entry of ``METRIC_NAMES`` maps to ``{"value", "ci_low", "ci_high"}``; plain entries: ``eer_threshold``,
    ``threshold``, ``confusion_matrix`` ([[tn, fp], [fn, tp]], rows = true real/fake, cols = predicted),
    ``confusion_counts`` ({"tn", "fp", "fn", "tp"}), ``n``, ``n_real``, ``n_fake``, ``n_bootstrap``, ``ci_level``.
    With a single class present, AUROC/AP/EER/TPR@FPR (and the rate of the missing class) are NaN with an
    ``UndefinedMetricWarning`` instead of an exception, so a lopsided shard never kills a run.
    The percentile interval is not forced to contain the point estimate.
    """
    p, y = validate_scores(p_fake, labels)
    check_threshold(threshold)
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    threshold = float(threshold)
    n = p.size
    n_pos = int(y.sum())
    n_neg = n - n_pos
    one_class = n_pos == 0 or n_neg == 0
    if one_class:
        missing = "fake_detection_rate" if n_pos == 0 else "real_detection_rate"
        warnings.warn(
            f"compute_metrics: labels contain a single class (n_real={n_neg}, n_fake={n_pos}); "
            f"auroc, ap, eer, eer_threshold, tpr_at_fpr_0.01 and {missing} are undefined and set to NaN",
            UndefinedMetricWarning,
            stacklevel=2,
        )

    # Per-sample quantities; any replicate is a multiset of sample indices, reduced through these.
    gid, uniq = _score_groups(p)
    n_groups = uniq.size
    pred_fake = (p >= threshold).astype(np.float64)
    p_clip = np.clip(p, _LOG_EPS, 1.0 - _LOG_EPS)
    nll = -(y * np.log(p_clip) + (1 - y) * np.log1p(-p_clip))
    sq_err = (p - y) ** 2
    ece_ids = _ece_bin_ids(p, ECE_BINS)
    ece_diff = p - y
    key = 2 * gid + y  # joint (score group, label) cell for one bincount per replicate

    def replicate_metrics(idx: np.ndarray) -> dict[str, np.ndarray]:
        """All metrics for a (B, n) array of sample indices."""
        b = idx.shape[0]
        row = np.arange(b)[:, None]
        out: dict[str, np.ndarray] = {}
        if one_class:
            out.update({k: np.full(b, np.nan) for k in (*CURVE_METRICS, "_eer_idx")})
        else:
            cells = np.bincount((row * 2 * n_groups + key[idx]).ravel(), minlength=b * 2 * n_groups)
            cells = cells.reshape(b, n_groups, 2).astype(np.float64)
            out.update(_curve_metrics(cells[:, :, 1], cells[:, :, 0], n_pos, n_neg))
        flagged = pred_fake[idx]
        is_fake = y[idx]
        out.update(
            _threshold_metrics((flagged * is_fake).sum(1), (flagged * (1 - is_fake)).sum(1), n_pos, n_neg)
        )
        out["log_loss"] = nll[idx].mean(axis=1)
        out["brier"] = sq_err[idx].mean(axis=1)
        ece_sums = np.bincount(
            (row * (ECE_BINS + 1) + ece_ids[idx]).ravel(),
            weights=ece_diff[idx].ravel(),
            minlength=b * (ECE_BINS + 1),
        )
        out["ece"] = np.abs(ece_sums.reshape(b, ECE_BINS + 1)).sum(axis=1) / n
        return out

    point = replicate_metrics(np.arange(n)[None, :])

    pos_ids = np.flatnonzero(y == 1)
    neg_ids = np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    boot: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = np.concatenate(
            [pos_ids[rng.integers(0, n_pos, (b, n_pos))], neg_ids[rng.integers(0, n_neg, (b, n_neg))]], axis=1
        )
        rep = replicate_metrics(idx)
        for name in METRIC_NAMES:
            boot[name].append(rep[name])

    result: dict[str, Any] = {}
    for name in METRIC_NAMES:
        samples = np.concatenate(boot[name]) if boot[name] else np.empty(0)
        lo, hi = _percentile_ci(samples, ci)
        result[name] = {"value": float(point[name][0]), "ci_low": lo, "ci_high": hi}

    eer_idx = point["_eer_idx"][0]
    result["eer_threshold"] = math.nan if one_class else float(_thresholds(uniq)[int(eer_idx)])
    tp = int(((pred_fake == 1) & (y == 1)).sum())
    fp = int(((pred_fake == 1) & (y == 0)).sum())
    fn, tn = n_pos - tp, n_neg - fp
    result.update(
        threshold=threshold,
        confusion_matrix=[[tn, fp], [fn, tp]],
        confusion_counts={"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        n=n,
        n_real=n_neg,
        n_fake=n_pos,
        n_bootstrap=int(n_bootstrap),
        ci_level=float(ci),
    )
    return result
