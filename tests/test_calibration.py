"""Temperature scaling: recovery of a known T, monotone NLL, ECE improvement, clamping and JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from deepfake_lightning.bundle import read_calibration, write_calibration
from deepfake_lightning.evaluation.calibration import (
    T_MAX,
    T_MIN,
    apply_temperature,
    binary_nll,
    calibration_summary,
    fit_temperature,
)
from deepfake_lightning.evaluation.metrics import expected_calibration_error


def _synthetic(t_true: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z), so z is perfectly calibrated and z * t_true needs temperature t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return z * t_true, y


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.0, 4.0])
def test_recovers_known_temperature(t_true: float) -> None:
    logits, y = _synthetic(t_true)
    assert fit_temperature(logits, y) == pytest.approx(t_true, rel=0.06)


def test_nll_after_not_worse_and_ece_drops_on_overconfident_logits() -> None:
    logits, y = _synthetic(3.0, seed=1)
    t = fit_temperature(logits, y)
    assert binary_nll(logits, y, t) <= binary_nll(logits, y)
    ece_before = expected_calibration_error(apply_temperature(logits, 1.0), y)
    ece_after = expected_calibration_error(apply_temperature(logits, t), y)
    assert ece_after < 0.5 * ece_before


def test_fit_is_a_minimum() -> None:
    logits, y = _synthetic(1.7, n=3000, seed=2)
    t = fit_temperature(logits, y)
    best = binary_nll(logits, y, t)
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert best <= binary_nll(logits, y, t * factor) + 1e-12


def test_separable_data_clamps_instead_of_blowing_up() -> None:
    y = np.r_[np.zeros(50), np.ones(50)]
    logits = np.r_[np.full(50, -8.0), np.full(50, 8.0)]
    assert fit_temperature(logits, y) == pytest.approx(T_MIN)
    assert fit_temperature(-logits, y) == pytest.approx(T_MAX)  # all wrong: flattest possible


def test_fit_accepts_tensors_and_rejects_bad_input() -> None:
    logits, y = _synthetic(2.0, n=2000)
    assert fit_temperature(torch.from_numpy(logits), torch.from_numpy(y)) == pytest.approx(
        fit_temperature(logits, y)
    )
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature([0.0, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        fit_temperature([0.0, 1.0], [0, 3])


def test_apply_temperature_numpy_and_torch() -> None:
    z = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    p = apply_temperature(z, 2.0)
    np.testing.assert_allclose(p, torch.sigmoid(torch.tensor(z) / 2.0).numpy(), rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(p))
    pt = apply_temperature(torch.tensor(z), 2.0)
    assert isinstance(pt, torch.Tensor)
    np.testing.assert_allclose(pt.numpy(), p)
    with pytest.raises(ValueError, match="> 0"):
        apply_temperature(z, 0.0)


def test_summary_save_load_round_trip(tmp_path) -> None:
    logits, y = _synthetic(2.5, n=4000)
    t = fit_temperature(logits, y)
    summary = calibration_summary(logits, y, t, fitted_on="val")
    assert set(summary) == {
        "temperature",
        "fitted_on",
        "n",
        "nll_before",
        "nll_after",
        "ece_before",
        "ece_after",
    }
    assert summary["nll_after"] <= summary["nll_before"] and summary["n"] == 4000
    path = write_calibration(tmp_path / "out", summary)
    loaded = read_calibration(path)
    assert loaded == summary
    assert json.loads(path.read_text())["temperature"] == t


def test_load_rejects_missing_temperature(tmp_path) -> None:
    bad = tmp_path / "calibration.json"  # what write_calibration(tmp_path, ...) writes
    bad.write_text(json.dumps({"fitted_on": "val"}))
    with pytest.raises(ValueError, match="temperature"):
        read_calibration(bad)
    with pytest.raises(ValueError, match="> 0"):
        write_calibration(tmp_path, {"temperature": -1.0})
    assert math.isfinite(read_calibration(write_calibration(tmp_path, {"temperature": 1.0}))["temperature"])
