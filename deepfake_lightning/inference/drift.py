"""Score drift: the p_fake distribution a served model gives now, against the one its bundle recorded on validation.

A detector in production drifts as new generators, cameras or compressions appear; its scores move before anyone
has labels to measure accuracy with. The monitor keeps the last `drift_window` image scores of this process (a
sliding window counted in scores, not time: a quiet hour and a busy minute weigh the same) and compares their
histogram with the validation histogram of the bundle (`bundle/score_distribution.py`), on the same fixed bins.

The statistic is the population stability index, PSI = sum over bins of (live - valid) * ln(live / valid) on
bin proportions, rather than a two-sample Kolmogorov-Smirnov statistic (`scipy.stats.ks_2samp`), because:
- KS needs both samples: the bundle would have to carry every validation score (20,000 for faces140k), and
  each update would re-sort the window; PSI needs ten counts a side, and one score changes two bins (O(1));
- KS's p-value over a window of 1,000 scores calls small, harmless shifts significant, and the statistic alone
  has no agreed scale; PSI has the conventional one of model monitoring (below 0.1 stable, 0.1-0.25 a moderate
  shift, above 0.25 a large one: `drift_threshold` defaults to 0.25), and its per-bin terms say where the mass
  went (towards "fake", towards "real", or to the uncertain middle).
A bin with no score would make ln(0): each bin gets half a count on both sides (`PSEUDO_COUNT`). With B bins,
PSI between two samples of one distribution is about (B - 1) * (1/window + 1/n_valid): 0.01-0.02 with the
defaults, 0.05 over 200 scores.

What it measures is the score distribution, not accuracy: a different share of fakes in the traffic moves it
too. It is a signal to look, with the p_fake and verdict histograms of `/metrics` beside it. Only image answers
feed it (a video's frames are scored from one clip, and the validation split holds images). Ensembles have no
single temperature and validation record, so the monitor is off for them, as for a bundle without a record
(written before the record existed: retrain, or eval with `calibration.refit=true`).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.inference.detector import BaseDetector, Detector
from deepfake_lightning.inference.settings import ServiceSettings

log = logging.getLogger(__name__)

PSEUDO_COUNT = 0.5


def psi(expected: np.ndarray, observed: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins (each bin smoothed by
    `PSEUDO_COUNT`)."""
    e = (expected + PSEUDO_COUNT) / (expected.sum() + PSEUDO_COUNT * expected.size)
    o = (observed + PSEUDO_COUNT) / (observed.sum() + PSEUDO_COUNT * observed.size)
    return float(np.sum((o - e) * np.log(o / e)))


def p_fake_bins(reference: dict[str, Any], temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(p_fake cuts, validation counts per bin): the bundle's logit cuts mapped through sigmoid(logit / T)
    (bin i holds cuts[i-1] < p_fake <= cuts[i]). Cuts that meet in float64 (logits beyond ~37 T all give p_fake
    = 1.0) merge their bins, and a cut at 1.0 goes with the bin above it (no p_fake exceeds 1), so no bin is out
    of reach."""
    p_cuts = np.asarray(apply_temperature(np.asarray(reference["logit_cuts"], dtype=np.float64), temperature))
    counts = np.asarray(reference["counts"], dtype=np.float64)
    cuts = np.unique(p_cuts)
    cuts = cuts[cuts < 1.0]
    upper_edges = np.concatenate([p_cuts, [np.inf]])
    merged = np.zeros(cuts.size + 1)
    np.add.at(merged, np.searchsorted(cuts, upper_edges, side="left"), counts)
    return cuts, merged


class DriftMonitor:
    """`add(p_fake)` for every image answer; `value` is the PSI of the window once it holds `min_scores`."""

    def __init__(
        self,
        reference: dict[str, Any],
        temperature: float,
        window: int = 1000,
        min_scores: int = 200,
        threshold: float = 0.25,
    ) -> None:
        self.reference = reference
        self.cuts, self.expected = p_fake_bins(reference, temperature)
        self.observed = np.zeros_like(self.expected)
        self.window: deque[int] = deque()
        self.size, self.min_scores, self.threshold = window, min_scores, threshold
        self.value: float | None = None
        self.drifting = False

    @classmethod
    def for_detector(cls, detector: BaseDetector, settings: ServiceSettings) -> DriftMonitor | None:
        """The monitor of a single model whose bundle records its validation scores, else None (logged)."""
        if not isinstance(detector, Detector):
            log.info("score drift not monitored: an ensemble has no single validation distribution")
            return None
        reference = detector.bundle.validation_scores
        if reference is None:
            log.info(
                "score drift not monitored: the bundle of %s records no validation scores (retrain, or run "
                "eval with calibration.refit=true, to record them)",
                detector.bundle.source,
            )
            return None
        return cls(
            reference,
            detector.temperature,
            settings.drift_window,
            settings.drift_min_scores,
            settings.drift_threshold,
        )

    def add(self, p_fake: float) -> float | None:
        """One more score in the window (the oldest leaves once it is full); the PSI, or None while the window
        holds fewer than `min_scores`."""
        index = int(np.searchsorted(self.cuts, p_fake, side="left"))
        self.window.append(index)
        self.observed[index] += 1
        if len(self.window) > self.size:
            self.observed[self.window.popleft()] -= 1
        if len(self.window) < self.min_scores:
            return None
        self.value = psi(self.expected, self.observed)
        self._report()
        return self.value

    def _report(self) -> None:
        """A warning when the PSI rises above the threshold, a note when it falls back: once per crossing."""
        assert self.value is not None
        above = self.value > self.threshold
        if above and not self.drifting:
            log.warning(
                "score drift: PSI %.3f over the last %d image scores > drift_threshold=%g against the %s "
                "distribution in the model's bundle (n=%d); live share per bin %s vs %s",
                self.value,
                len(self.window),
                self.threshold,
                self.reference.get("split", "validation"),
                int(self.expected.sum()),
                _shares(self.observed),
                _shares(self.expected),
            )
        elif self.drifting and not above:
            log.info("score drift back under drift_threshold=%g: PSI %.3f", self.threshold, self.value)
        self.drifting = above

    def status(self) -> dict[str, Any]:
        """What `/v1/model` and the page's model card show."""
        return {
            "statistic": "psi",
            "value": self.value,
            "threshold": self.threshold,
            "drifting": self.drifting,
            "scores": len(self.window),
            "window": self.size,
            "min_scores": self.min_scores,
            "reference": {"split": self.reference.get("split"), "n": int(self.expected.sum())},
            "bins": int(self.expected.size),
        }


def _shares(counts: np.ndarray) -> list[float]:
    return [round(float(c), 3) for c in counts / max(counts.sum(), 1)]
