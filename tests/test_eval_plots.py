"""Every figure writer produces a readable PNG and degrades gracefully on missing data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_lightning.evaluation import plots
from deepfake_lightning.evaluation.metrics import compute_metrics


def _scores(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.5 * (2 * y - 1))))
    return p, y


def _assert_png(path: Path, min_w: int = 300, min_h: int = 200) -> None:
    assert path.exists() and path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        assert img.width >= min_w and img.height >= min_h
        assert img.width <= 4000 and img.height <= 4000


def test_confusion_matrix_list_and_dict(tmp_path: Path) -> None:
    _assert_png(plots.plot_confusion_matrix([[50, 5], [3, 42]], tmp_path / "cm.png", "Test"))
    _assert_png(
        plots.plot_confusion_matrix({"tn": 0, "fp": 0, "fn": 3, "tp": 42}, tmp_path / "cm2.png", "Empty row")
    )


def test_roc_pr_hist(tmp_path: Path) -> None:
    p, y = _scores()
    _assert_png(plots.plot_roc(p, y, tmp_path / "roc.png"))
    _assert_png(plots.plot_pr(p, y, tmp_path / "pr.png"))
    _assert_png(plots.plot_score_hist(p, y, tmp_path / "hist.png"))
    _assert_png(plots.plot_score_hist(np.round(p, 1), y, tmp_path / "hist2.png", threshold=None))


def test_curves_with_one_class_do_not_crash(tmp_path: Path) -> None:
    p, _ = _scores(50)
    y = np.ones(50, dtype=int)
    _assert_png(plots.plot_roc(p, y, tmp_path / "roc.png"))
    _assert_png(plots.plot_pr(p, y, tmp_path / "pr.png"))
    _assert_png(plots.plot_score_hist(p, y, tmp_path / "hist.png"))


def test_reliability_before_and_after(tmp_path: Path) -> None:
    p, y = _scores()
    p_sharp = np.clip(p**3 / (p**3 + (1 - p) ** 3), 0, 1)
    _assert_png(plots.plot_reliability(p_sharp, p, y, tmp_path / "rel.png"))
    _assert_png(plots.plot_reliability(np.r_[p, 1.0, 0.0], None, np.r_[y, 1, 0], tmp_path / "rel_only.png"))


def test_training_curves(tmp_path: Path) -> None:
    history = [
        {
            "epoch": e,
            "train/loss": 1.0 / (e + 1),
            "val/loss": 1.2 / (e + 1),
            "val/auroc": 0.7 + 0.05 * e,
            "val/accuracy@0.5": 0.6,
        }
        for e in range(5)
    ]
    history[2]["val/auroc"] = float("nan")
    history.append({"epoch": 5, "train/loss_epoch": 0.1, "val/f1@0.5": 0.8, "lr": 1e-3})
    _assert_png(plots.plot_training_curves(history, tmp_path / "curves.png"))
    _assert_png(plots.plot_training_curves([{"epoch": 0, "train/loss": 0.5}], tmp_path / "one.png"))


@pytest.mark.parametrize("history", [[], [{"epoch": 0, "lr": 0.1}]], ids=["empty", "no_known_keys"])
def test_training_curves_without_data(tmp_path: Path, history: list[dict]) -> None:
    _assert_png(plots.plot_training_curves(history, tmp_path / "curves.png"))


def test_performance_summary(tmp_path: Path) -> None:
    p, y = _scores()
    metrics = compute_metrics(p, y, n_bootstrap=50)
    _assert_png(plots.plot_performance_summary(metrics, tmp_path / "summary.png"))
    partial = {"auroc": {"value": 0.9}, "accuracy": 0.8, "eer": {"value": float("nan")}}
    _assert_png(plots.plot_performance_summary(partial, tmp_path / "partial.png"))
    _assert_png(plots.plot_performance_summary({}, tmp_path / "empty.png"))


def test_no_pyplot_state_leaks(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    p, y = _scores()
    plots.plot_roc(p, y, tmp_path / "roc.png")
    assert len(plt.get_fignums()) == before
