"""Score drift without a server: the validation histogram a bundle records, its bins in p_fake under any
temperature, the PSI of a sliding window, the warning at the threshold, and the settings that drive it."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from deepfake_lightning.bundle import BundleError, check_score_distribution, score_distribution
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.inference.drift import DriftMonitor, p_fake_bins, psi
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.utils.config_validation import ConfigError

RNG = np.random.default_rng(0)
VALID = RNG.normal(0.0, 2.0, 2000)  # validation logits


def test_the_record_holds_a_tenth_of_validation_per_bin_and_no_empty_bin() -> None:
    record = score_distribution(VALID)
    assert record["n"] == 2000 and record["split"] == "valid" and len(record["logit_cuts"]) == 9
    assert record["counts"] == [200] * 10
    assert check_score_distribution(record, "x.json") is record
    tied = score_distribution([0.3] * 50 + [1.0] * 50 + [2.0])  # ties merge cuts; none is empty
    assert tied["counts"] == [50, 50, 1] and tied["logit_cuts"] == [0.3, 1.0]
    assert score_distribution([0.5, 0.5])["counts"] == [2]  # one value: one bin
    with pytest.raises(ValueError, match="no finite valid logits"):
        score_distribution([float("nan")])


@pytest.mark.parametrize(
    "bad",
    [
        {"n": 3, "logit_cuts": [0.0], "counts": [1, 1]},  # counts do not add up to n
        {"n": 2, "logit_cuts": [1.0, 0.0], "counts": [1, 0, 1]},  # cuts not increasing
        {"n": 2, "logit_cuts": [0.0], "counts": [2]},  # one count too few
        "deciles",
    ],
)
def test_a_malformed_record_is_refused_naming_the_manifest(bad: object) -> None:
    with pytest.raises(BundleError, match=r"^RUN/best.ckpt.json: validation_scores .*expected"):
        check_score_distribution(bad, "RUN/best.ckpt.json")


@pytest.mark.parametrize("temperature", [1.0, 0.3, 7.0])
def test_the_bins_in_p_fake_put_each_validation_score_where_its_logit_was(temperature: float) -> None:
    cuts, expected = p_fake_bins(score_distribution(VALID), temperature)
    p_fake = apply_temperature(VALID, temperature)
    live = np.bincount(np.searchsorted(cuts, p_fake, side="left"), minlength=cuts.size + 1)
    assert live.tolist() == expected.tolist() == [200] * 10


def test_cuts_saturated_at_p_fake_one_merge_into_the_top_bin() -> None:
    logits = np.r_[VALID, np.full(300, 50.0), np.full(100, 60.0)]  # sigmoid(50) == sigmoid(60) == 1.0
    cuts, expected = p_fake_bins(score_distribution(logits), 1.0)
    assert cuts.max() < 1.0 and expected.sum() == logits.size
    live = np.bincount(
        np.searchsorted(cuts, apply_temperature(logits, 1.0), side="left"), minlength=cuts.size + 1
    )
    assert live.tolist() == expected.tolist()


def test_psi_is_zero_for_one_distribution_and_grows_with_the_shift() -> None:
    counts = np.array([100.0] * 10)
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    moved = np.array([0, 0, 0, 0, 0, 200, 200, 200, 200, 200.0])
    half = np.array([50, 50, 50, 50, 50, 150, 150, 150, 150, 150.0])
    assert psi(counts, half) < psi(counts, moved) and psi(counts, moved) > 1.0


def _monitor(**kwargs: object) -> DriftMonitor:
    options = {"window": 500, "min_scores": 300, "threshold": 0.25, **kwargs}
    return DriftMonitor(score_distribution(VALID), 2.0, **options)  # type: ignore[arg-type]


def test_a_window_like_validation_stays_low_and_a_shifted_one_rises(caplog: pytest.LogCaptureFixture) -> None:
    monitor = _monitor()
    same = apply_temperature(np.random.default_rng(1).normal(0.0, 2.0, 500), 2.0)
    values = [monitor.add(p) for p in same]
    assert values[:299] == [None] * 299 and monitor.status()["value"] == values[-1]
    assert values[-1] < 0.1 and not monitor.drifting  # expected about (10 - 1) * (1/500 + 1/2000) = 0.02
    shifted = apply_temperature(
        np.random.default_rng(2).normal(3.0, 2.0, 500), 2.0
    )  # the scores move to "fake"
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.inference.drift"):
        values = [monitor.add(p) for p in shifted]
        assert values[-1] > 0.25 and monitor.drifting and len(monitor.window) == 500
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "score drift: PSI" in warnings[0].getMessage()  # once per crossing
        assert "drift_threshold=0.25" in warnings[0].getMessage()
        for p in same:  # the window slides back to validation-like scores
            monitor.add(p)
    assert monitor.value is not None and monitor.value < 0.1 and not monitor.drifting
    assert any("back under drift_threshold" in r.getMessage() for r in caplog.records)
    status = monitor.status()
    assert status["reference"] == {"split": "valid", "n": 2000} and status["bins"] == 10
    assert (status["scores"], status["window"], status["statistic"]) == (500, 500, "psi")


def test_the_drift_settings_are_checked_at_start_up() -> None:
    assert ServiceSettings().drift_window == 1000 and ServiceSettings().metrics_public is False
    with pytest.raises(ConfigError, match="drift_min_scores=2000: expected at most drift_window=1000"):
        ServiceSettings.check({"drift_min_scores": 2000})
    with pytest.raises(ConfigError, match="drift_threshold"):
        ServiceSettings.check({"drift_threshold": 0})
