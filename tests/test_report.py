"""REPORT.md is built purely from the run's files: every number comes from test_results.json & co."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.report import build_report, write_report
from deepfake_lightning.report import main
from tests.conftest import REPO_ROOT


def write_run(tmp_path: Path) -> tuple[Path, dict]:
    """A train run dir holding only files: no model, no data, no checkpoint weights."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [60, 40])
    p_fake = np.clip(0.35 * labels + rng.random(100) * 0.65, 0, 1)
    calibration = {"temperature": 1.7, "threshold": 0.42, "threshold_rule": "max_f1", "fitted_on": "valid", "n": 50,
                   "nll_before": 0.61, "nll_after": 0.55, "ece_before": 0.12, "ece_after": 0.04}  # fmt: skip
    results = compute_metrics(p_fake, labels, threshold=0.42, n_bootstrap=200)
    results.update(
        temperature=1.7,
        uncalibrated={"log_loss": 0.7, "ece": 0.15},
        checkpoint=str(run / "checkpoints" / "best.ckpt"),
        model={
            "parameters": 3_500_000,
            "trainable_parameters": 3_000_000,
            "frozen_tensors": 60,
            "size_mb_fp32": 14.2,
        },
        data={
            "train": {"real": 600, "fake": 400},
            "valid": {"real": 30, "fake": 20},
            "test": {"real": 60, "fake": 40},
        },
        calibration=calibration,
    )
    (run / "test_results.json").write_text(json.dumps(results))
    (run / "calibration.json").write_text(json.dumps(calibration))
    history = [{"epoch": e, "val/auroc": a, "epoch_seconds": 30.0} for e, a in enumerate([0.7, 0.91, 0.88])]
    (run / "training_history.json").write_text(json.dumps(history))
    (run / "config.yaml").write_text(
        "callbacks:\n  model_checkpoint:\n    monitor: val/auroc\n    mode: max\n"
    )
    for name in ("training_progress.png", "roc.png", "confusion_matrix.png"):
        (run / name).write_bytes(b"png")
    return run, results


def test_report_numbers_come_from_the_files(tmp_path: Path) -> None:
    run, results = write_run(tmp_path)
    report = build_report(run)
    auroc = results["auroc"]
    assert f"| AUROC | {auroc['value']:.4f} [{auroc['ci_low']:.4f}, {auroc['ci_high']:.4f}] |" in report
    assert "n = 100: 60 real, 40 fake" in report
    tn, fp, fn, tp = (results["confusion_counts"][k] for k in ("tn", "fp", "fn", "tp"))
    assert f"| real (n=60) | {tn} ({tn / 60:.1%}) | {fp} ({fp / 60:.1%}) |" in report
    assert f"| fake (n=40) | {fn} ({fn / 40:.1%}) | {tp} ({tp / 40:.1%}) |" in report
    assert "best epoch (chosen on validation by `val/auroc`, max): 1 (val/auroc = 0.9100)" in report
    assert "epochs trained: 3" in report and "90.0 s" in report
    assert "rule `max_f1`" in report and "T = 1.7000" in report and "ECE 0.1200 -> 0.0400" in report
    assert "| 3,500,000 | 3,000,000 | 60 | 14.20 |" in report
    assert "![ROC](roc.png)" in report and "![training progress](training_progress.png)" in report
    assert "pr.png" not in report  # figures that were not written are not linked
    assert "## Robustness" not in report and "## Cross-dataset" not in report

    # edit a number in the file: the regenerated report follows the file, it does not recompute
    results["auroc"]["value"] = 0.123456
    (run / "test_results.json").write_text(json.dumps(results))
    assert "| AUROC | 0.1235 [" in build_report(run)


def test_eval_run_reads_training_from_the_checkpoint_run(tmp_path: Path) -> None:
    run, results = write_run(tmp_path)
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    del results["model"]
    (eval_dir / "test_results.json").write_text(json.dumps(results))
    (run / "model_info.json").write_text(json.dumps({"model": {"parameters": 42, "frozen_tensors": 0}}))
    robustness = {"results": [
        {"corruption": "clean", "severity": None, "n": 100, "auroc": {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95},
         "accuracy": {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}},
        {"corruption": "jpeg", "severity": 30.0, "n": 100, "auroc": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8},
         "accuracy": {"value": 0.6, "ci_low": 0.5, "ci_high": 0.7}},
    ]}  # fmt: skip
    (eval_dir / "robustness.json").write_text(json.dumps(robustness))
    report = write_report(eval_dir).read_text()
    assert f"training run: `{run}`" in report
    assert "![training progress](../run/training_progress.png)" in report
    assert "| 42 |" in report  # architecture from the training run's model_info.json
    assert "| jpeg | 30 | 100 | 0.7000 [0.6000, 0.8000] | -0.2000 | 0.6000 [0.5000, 0.7000] |" in report


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = write_run(tmp_path)
    assert main([str(run)]) == 0
    first = (run / "REPORT.md").read_text()
    assert main([str(run)]) == 0 and (run / "REPORT.md").read_text() == first  # regeneration is stable
    assert main([str(tmp_path / "missing")]) == 1
    assert "test_results.json not found" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "deepfake_lightning.report", str(run)], cwd=REPO_ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("REPORT.md")
