"""The ensemble rule, in one place: what `EnsembleDetector` serves and what the benchmark's ensemble rows score.

The mean of the members' *calibrated* p_fake (each member's validation-fitted temperature applied), with the
mean of their thresholds as the operating point. Fixed a priori, not fitted: weights or a stacker chosen on the
test splits would score a rule no one could have picked before seeing them, and one fitted on validation would
need the members' validation predictions, which the benchmark rows do not keep. Averaging probabilities rather
than logits keeps an over-confident member from dominating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COMBINE_RULE = "mean of calibrated p_fake"
THRESHOLD_RULE = "mean of the members' thresholds"


def mean_p_fake(member_p_fakes: Sequence[Any]) -> np.ndarray:
    """One array of p_fake per member (same images, same order) -> the ensemble's p_fake per image."""
    return np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in member_p_fakes]), axis=0)


def mean_threshold(thresholds: Sequence[float]) -> float:
    return float(np.mean([float(t) for t in thresholds]))
