"""choose_threshold against brute force over every candidate threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from deepfake_lightning.evaluation.thresholds import choose_threshold


def _scores(n: int = 400, seed: int = 0, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + (2 * y - 1))))
    return (np.round(p, decimals) if decimals is not None else p), y


def _candidates(p: np.ndarray) -> np.ndarray:
    """Every distinct decision: above the top score (flag nothing), then each distinct score, descending."""
    return np.r_[np.nextafter(p.max(), np.inf), np.unique(p)[::-1]]


def _rates(p: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float]:
    pred = p >= t
    return pred[y == 0].mean(), 1.0 - pred[y == 1].mean()


DATA = [_scores(seed=1), _scores(seed=2, decimals=1), _scores(n=60, seed=3)]
IDS = ["random", "ties", "small"]


@pytest.mark.parametrize(("p", "y"), DATA, ids=IDS)
def test_eer_rule(p: np.ndarray, y: np.ndarray) -> None:
    gaps = [abs(np.subtract(*_rates(p, y, t))) for t in _candidates(p)]
    assert choose_threshold(p, y, "eer") == _candidates(p)[int(np.argmin(gaps))]


@pytest.mark.parametrize(("p", "y"), DATA, ids=IDS)
@pytest.mark.parametrize("max_fpr", [0.0, 0.01, 0.05, 0.2, 1.0])
def test_fpr_rule(p: np.ndarray, y: np.ndarray, max_fpr: float) -> None:
    ok = [t for t in _candidates(p) if _rates(p, y, t)[0] <= max_fpr]
    t = choose_threshold(p, y, f"fpr@{max_fpr}")
    assert t == min(ok)
    assert _rates(p, y, t)[0] <= max_fpr


@pytest.mark.parametrize(("p", "y"), DATA, ids=IDS)
def test_max_f1_rule(p: np.ndarray, y: np.ndarray) -> None:
    cands = _candidates(p)
    f1 = [f1_score(y, (p >= t).astype(int), zero_division=0) for t in cands]
    t = choose_threshold(p, y, "max_f1")
    assert t == cands[int(np.argmax(f1))]
    assert f1_score(y, (p >= t).astype(int)) == pytest.approx(max(f1))


@pytest.mark.parametrize(
    ("rule", "expected"), [("0.5", 0.5), (0.5, 0.5), (0.3, 0.3), ("0.75", 0.75), (0, 0.0)]
)
def test_fixed_rules(rule: str | float, expected: float) -> None:
    p, y = _scores()
    assert choose_threshold(p, y, rule) == expected


def test_rule_names_are_case_insensitive() -> None:
    p, y = _scores()
    assert choose_threshold(p, y, " EER ") == choose_threshold(p, y, "eer")
    assert choose_threshold(p, y, "FPR@0.05") == choose_threshold(p, y, "fpr@0.05")


@pytest.mark.parametrize("rule", ["youden", "fpr@", "fpr@abc", "max-f1", None, [0.5]])
def test_unknown_rule_lists_allowed(rule: object) -> None:
    p, y = _scores()
    with pytest.raises(ValueError, match=r"allowed: .*eer.*fpr@X.*max_f1"):
        choose_threshold(p, y, rule)


@pytest.mark.parametrize("rule", [1.5, "-0.1", "fpr@2"])
def test_out_of_range_rules(rule: str | float) -> None:
    p, y = _scores()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_threshold(p, y, rule)


def test_data_driven_rule_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([0.2, 0.4, 0.9], [1, 1, 1], "eer")
