"""Decision-threshold selection.

Choose the threshold on VALIDATION scores only and then apply it unchanged to the test set: picking it on the
test scores leaks the labels into the operating point and inflates every threshold metric.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.metrics import operating_points
from deepfake_lightning.utils.config_schema import THRESHOLD_WORDS, check_threshold

ALLOWED_RULES = (f'{THRESHOLD_WORDS} (e.g. 0.5 or "0.5")', '"eer"', '"fpr@X" (e.g. "fpr@0.01")', '"max_f1"')
_FPR_RULE = re.compile(r"^fpr@(.+)$")


def _unknown_rule(rule: Any) -> ValueError:
    return ValueError(f"unknown threshold rule {rule!r}; allowed: {', '.join(ALLOWED_RULES)}")


def _as_fixed(rule: Any) -> float | None:
    """The threshold if ``rule`` is a plain number (or numeric string), else None."""
    if isinstance(rule, bool):
        return None
    try:
        value = float(rule)
    except (TypeError, ValueError):
        return None
    return check_threshold(value, key="fixed threshold")


def choose_threshold(p_fake: Any, labels: Any, rule: str | float = "0.5") -> float:
    """The p_fake threshold (predict fake iff ``p_fake >= t``) for ``rule``, fitted on validation scores.

    - number / numeric string: that fixed threshold (scores are not used);
    - ``"eer"``: the operating point where FPR and FNR are closest (same point as ``compute_metrics``' EER);
    - ``"fpr@X"``: the lowest threshold whose FPR on reals is <= X (max recall under an FPR budget);
    - ``"max_f1"``: the threshold maximising F1 (highest such threshold on ties).
    A returned threshold just above the top score means "flag nothing" and can exceed 1.0 by one ulp.
    """
    fixed = _as_fixed(rule)
    if fixed is not None:
        return fixed
    if not isinstance(rule, str):
        raise _unknown_rule(rule)
    name = rule.strip().lower()
    fpr_match = _FPR_RULE.match(name)
    if name not in ("eer", "max_f1") and fpr_match is None:
        raise _unknown_rule(rule)

    ops = operating_points(p_fake, labels)
    if ops.n_pos == 0 or ops.n_neg == 0:
        raise ValueError(
            f"threshold rule {rule!r} needs both classes in the validation labels, got n_real={ops.n_neg}, n_fake={ops.n_pos}"
        )
    if name == "eer":
        idx = int(np.argmin(np.abs(ops.fpr - (1.0 - ops.tpr))))
    elif name == "max_f1":
        f1 = 2 * ops.tp / (ops.tp + ops.fp + ops.n_pos)  # denominator is 2TP + FP + FN, > 0 as n_pos > 0
        idx = int(np.argmax(f1))
    else:
        try:
            max_fpr = float(fpr_match.group(1))
        except ValueError:
            raise _unknown_rule(rule) from None
        if not 0.0 <= max_fpr <= 1.0:
            raise ValueError(f"FPR budget in {rule!r} must be in [0, 1]")
        idx = int(
            np.flatnonzero(ops.fpr <= max_fpr + 1e-12)[-1]
        )  # fpr is non-decreasing; index 0 always qualifies
    return float(ops.thresholds[idx])
