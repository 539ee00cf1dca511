"""Temperature + threshold fitted on validation after training, stored in RUN/calibration.json, applied to test."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deepfake_lightning.bundle import read_calibration
from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.calibrate_run import (
    calibrate,
    fit_calibration,
)
from deepfake_lightning.evaluation.calibration import apply_temperature, binary_nll
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from deepfake_lightning.evaluation.test_outputs import write_test_outputs
from deepfake_lightning.evaluation.thresholds import choose_threshold
from tests.tiny_run import eval_config, shared_tiny_run

CALIBRATION_KEYS = {
    "temperature", "threshold", "threshold_rule", "fitted_on", "n",
    "nll_before", "nll_after", "ece_before", "ece_after",
}  # fmt: skip


def overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits 4x too large for their true log-odds: the fitted T must come out well above 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    true_logit = rng.normal(0, 1.5, n) + np.where(labels == 1, 1.0, -1.0)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return 4.0 * true_logit, labels


def test_fit_calibration_scales_and_picks_threshold_on_scaled_scores() -> None:
    logits, labels = overconfident()
    record = fit_calibration(logits, labels, "eer")
    assert CALIBRATION_KEYS <= set(record)
    assert record["fitted_on"] == "valid" and record["threshold_rule"] == "eer" and record["n"] == labels.size
    assert 2.5 < record["temperature"] < 6.0
    assert record["nll_after"] < record["nll_before"]
    assert record["nll_after"] == pytest.approx(binary_nll(logits, labels, record["temperature"]))
    expected = choose_threshold(apply_temperature(logits, record["temperature"]), labels, "eer")
    assert record["threshold"] == pytest.approx(min(expected, 1.0))
    assert fit_calibration(logits, labels, 0.5)["threshold"] == 0.5


class LogitOfMean(torch.nn.Module):
    """Logit = 10 x (mean pixel - 0.5): lets a test choose predictions through the images it feeds."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 10.0 * (images.mean(dim=(1, 2, 3)) - 0.5) + 0 * self.dummy


def loader_of(levels: list[float], labels: list[int]) -> list[dict]:
    images = torch.stack([torch.full((3, 4, 4), v) for v in levels])
    return [{"image": images, "target": torch.tensor(labels, dtype=torch.float), "path": [str(i) for i in levels],
             "skipped": []}]  # fmt: skip


def test_calibrate_writes_record_and_reliability(tmp_path: Path) -> None:
    loader = loader_of([0.1, 0.3, 0.45, 0.55, 0.6, 0.9], [0, 0, 1, 0, 1, 1])
    record = calibrate(LogitOfMean(), loader, tmp_path, rule="max_f1")
    stored = read_calibration(tmp_path / "calibration.json")
    assert CALIBRATION_KEYS <= set(stored)
    assert stored["threshold"] == pytest.approx(record["threshold"])
    assert stored["threshold_rule"] == "max_f1" and stored["n"] == 6
    assert (tmp_path / "reliability.png").stat().st_size > 0


def test_write_test_outputs_applies_temperature_and_threshold(tmp_path: Path) -> None:
    logits = torch.tensor([-3.0, -0.5, 0.4, 1.0, 2.5, -1.2])
    module = SimpleNamespace(
        test_outputs={
            "path": list("abcdef"),
            "target": [torch.tensor([0, 0, 1, 0, 1, 1])],
            "logit": [logits],
        },
        hparams={"threshold": 0.5},
    )
    results = write_test_outputs(module, tmp_path, temperature=2.0, threshold=0.6)
    p_expected = 1 / (1 + np.exp(-logits.double().numpy() / 2.0))
    preds = read_predictions_csv(tmp_path / "predictions.csv")
    np.testing.assert_allclose(preds["p_fake"], p_expected, rtol=1e-12)
    assert results["temperature"] == 2.0 and results["threshold"] == 0.6
    flagged = p_expected >= 0.6  # only logits > 2 * logit(0.6) = 0.81: indices 3, 4
    assert results["confusion_counts"] == {"tn": 2, "fp": 1, "fn": 2, "tp": 1}
    assert flagged.sum() == 2
    assert results["uncalibrated"]["log_loss"] == pytest.approx(binary_nll(logits, [0, 0, 1, 0, 1, 1], 1.0))
    for name in ("test_results.json", "performance_summary.png", "test_reliability.png", "REPORT.md"):
        assert (tmp_path / name).is_file(), name


@pytest.fixture(scope="module")
def eer_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return shared_tiny_run(tmp_path_factory, ("calibration.threshold_rule=eer",))


def test_train_fits_on_validation_and_applies_to_test(eer_run: tuple[Path, Path, Path]) -> None:
    _, run, _ = eer_run
    record = json.loads((run / "calibration.json").read_text())
    assert CALIBRATION_KEYS <= set(record)
    assert record["fitted_on"] == "valid" and record["threshold_rule"] == "eer"
    assert record["n"] == 4  # the validation split (2 real + 2 fake), not the test split
    assert Path(record["checkpoint"]).name == "best.ckpt"  # the checkpoint chosen on validation, not the last
    assert (run / "reliability.png").is_file()
    results = json.loads((run / "test_results.json").read_text())
    assert results["threshold"] == pytest.approx(record["threshold"])
    assert results["temperature"] == pytest.approx(record["temperature"])
    assert results["calibration"]["threshold_rule"] == "eer"
    assert {"value", "ci_low", "ci_high"} <= set(results["auroc"]) and results["n_real"] + results[
        "n_fake"
    ] == results["n"]
    preds = read_predictions_csv(run / "predictions.csv")
    np.testing.assert_allclose(
        preds["p_fake"], apply_temperature(preds["logit"], record["temperature"]), rtol=1e-12
    )
    report = (run / "REPORT.md").read_text()
    assert "rule `eer`" in report and "`valid` split" in report


def test_eval_uses_the_runs_calibration_or_refits_on_validation(eer_run: tuple[Path, Path, Path]) -> None:
    base, run, data_root = eer_run
    data = ["data=folder", f"data.root={data_root}", "explain.enabled=false"]
    cfg = eval_config(base, "eval_auto", run / "checkpoints" / "best.ckpt", data)
    results = evaluate(cfg)
    record = json.loads((run / "calibration.json").read_text())
    assert results["threshold"] == pytest.approx(record["threshold"])
    assert results["calibration"]["source"] == str((run / "calibration.json").resolve())
    assert (base / "eval_auto" / "predictions.csv").read_text() == (run / "predictions.csv").read_text()

    refit = eval_config(base, "eval_refit", run / "checkpoints" / "best.ckpt",
                        [*data, "calibration.refit=true", "calibration.threshold_rule=max_f1"])  # fmt: skip
    evaluate(refit)
    own = json.loads((base / "eval_refit" / "calibration.json").read_text())
    assert own["threshold_rule"] == "max_f1" and own["fitted_on"] == "valid" and own["n"] == 4
    # the bundle's validation score distribution (the service's drift reference) goes with the calibration:
    # the checkpoint's own without a refit, the refit's validation split with one
    trained = json.loads((run / "checkpoints" / "best.ckpt.json").read_text())["validation_scores"]
    assert json.loads((base / "eval_auto" / "bundle.json").read_text())["validation_scores"] == trained
    refitted = json.loads((base / "eval_refit" / "bundle.json").read_text())["validation_scores"]
    assert refitted["n"] == 4 and sum(refitted["counts"]) == 4 and refitted["split"] == "valid"

    raw = eval_config(base, "eval_raw", run / "checkpoints" / "best.ckpt", [*data, "calibration.path=null"])
    assert evaluate(raw)["temperature"] == 1.0
