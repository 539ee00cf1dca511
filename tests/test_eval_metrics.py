"""compute_metrics against scikit-learn / torchmetrics, plus bootstrap and input-validation behaviour."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_calibration_error,
    binary_eer,
)

from deepfake_lightning.evaluation.metrics import (
    METRIC_NAMES,
    UndefinedMetricWarning,
    compute_metrics,
    expected_calibration_error,
    operating_points,
)


def _scores(n: int, seed: int = 0, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.2 * (2 * y - 1))))
    if decimals is not None:
        p = np.round(p, decimals)  # many ties
    return p, y


def _sk_eer(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    k = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return (fpr[k] + 1 - tpr[k]) / 2, thr[k]


def _sk_tpr_at_fpr(p: np.ndarray, y: np.ndarray, max_fpr: float = 0.01) -> float:
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr].max())


def _sk_reference(p: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "auroc": skm.roc_auc_score(y, p),
        "ap": skm.average_precision_score(y, p),
        "eer": _sk_eer(p, y)[0],
        "tpr_at_fpr_0.01": _sk_tpr_at_fpr(p, y),
        "accuracy": skm.accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred, zero_division=0),
        "real_detection_rate": tn / (tn + fp),
        "fake_detection_rate": skm.recall_score(y, pred),
        "log_loss": skm.log_loss(y, p, labels=[0, 1]),
        "brier": skm.brier_score_loss(y, p),
    }


@pytest.mark.parametrize(
    ("p", "y"),
    [
        _scores(500, seed=1),
        _scores(800, seed=2, decimals=1),
        (np.full(60, 0.3), np.r_[np.zeros(20), np.ones(40)]),
    ],
    ids=["random", "ties", "constant"],
)
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_point_values_match_sklearn(p: np.ndarray, y: np.ndarray, threshold: float) -> None:
    m = compute_metrics(p, y, threshold=threshold, n_bootstrap=0)
    for name, expected in _sk_reference(p, y, threshold).items():
        assert m[name]["value"] == pytest.approx(expected, abs=1e-10), name
    pred = (p >= threshold).astype(int)
    cm = skm.confusion_matrix(y, pred, labels=[0, 1])
    assert m["confusion_matrix"] == cm.tolist()
    assert m["confusion_counts"] == dict(zip(["tn", "fp", "fn", "tp"], cm.ravel().tolist(), strict=True))
    assert (m["n"], m["n_real"], m["n_fake"]) == (len(y), int((y == 0).sum()), int((y == 1).sum()))
    assert m["threshold"] == threshold


@pytest.mark.parametrize(
    ("p", "y"), [_scores(700, seed=3), _scores(700, seed=4, decimals=2)], ids=["random", "ties"]
)
def test_point_values_match_torchmetrics(p: np.ndarray, y: np.ndarray) -> None:
    m = compute_metrics(p, y, n_bootstrap=0)
    pt, yt = torch.from_numpy(p), torch.from_numpy(y)
    assert m["auroc"]["value"] == pytest.approx(binary_auroc(pt, yt).item(), abs=1e-6)
    assert m["ap"]["value"] == pytest.approx(binary_average_precision(pt, yt).item(), abs=1e-6)
    assert m["eer"]["value"] == pytest.approx(binary_eer(pt, yt).item(), abs=1e-6)
    ece_tm = binary_calibration_error(pt, yt, n_bins=15, norm="l1").item()
    assert m["ece"]["value"] == pytest.approx(ece_tm, abs=1e-6)
    assert expected_calibration_error(p, y) == pytest.approx(ece_tm, abs=1e-6)


def test_eer_threshold_is_the_roc_operating_point() -> None:
    p, y = _scores(400, seed=5)
    m = compute_metrics(p, y, n_bootstrap=0)
    eer, thr = _sk_eer(p, y)
    assert m["eer_threshold"] == pytest.approx(thr)
    # Applying the rule p >= eer_threshold reproduces the EER operating point.
    pred = p >= m["eer_threshold"]
    fpr = pred[y == 0].mean()
    fnr = 1 - pred[y == 1].mean()
    assert (fpr + fnr) / 2 == pytest.approx(eer)


def test_operating_points_match_sklearn_roc() -> None:
    p, y = _scores(300, seed=6, decimals=2)
    ops = operating_points(p, y)
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(ops.fpr, fpr)
    np.testing.assert_allclose(ops.tpr, tpr)
    np.testing.assert_allclose(ops.thresholds[1:], thr[1:])


def test_bootstrap_replicates_match_sklearn_on_resamples() -> None:
    """Re-draws the documented stratified resamples (one chunk: reals' and fakes' indices) and recomputes with sklearn."""
    p, y = _scores(150, seed=7, decimals=2)
    n_boot, ci = 40, 0.9
    m = compute_metrics(p, y, n_bootstrap=n_boot, ci=ci, seed=11)
    rng = np.random.default_rng(11)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    idx = np.concatenate(
        [
            pos[rng.integers(0, pos.size, (n_boot, pos.size))],
            neg[rng.integers(0, neg.size, (n_boot, neg.size))],
        ],
        axis=1,
    )
    reps = [_sk_reference(p[i], y[i]) for i in idx]
    for name in reps[0]:
        values = np.array([r[name] for r in reps])
        lo, hi = np.percentile(values, [5, 95])
        assert m[name]["ci_low"] == pytest.approx(lo, abs=1e-9), name
        assert m[name]["ci_high"] == pytest.approx(hi, abs=1e-9), name
    ece = np.array([expected_calibration_error(p[i], y[i]) for i in idx])
    assert m["ece"]["ci_low"] == pytest.approx(np.percentile(ece, 5), abs=1e-9)


def test_result_structure_and_json() -> None:
    p, y = _scores(300)
    m = compute_metrics(p, y, n_bootstrap=50)
    for name in METRIC_NAMES:
        assert set(m[name]) == {"value", "ci_low", "ci_high"}
        assert all(isinstance(v, float) for v in m[name].values())
    assert m["n_bootstrap"] == 50 and m["ci_level"] == 0.95
    assert isinstance(m["eer_threshold"], float)
    json.dumps(m)


def test_ci_contains_value_deterministic_and_narrows() -> None:
    p, y = _scores(2000, seed=8)
    a = compute_metrics(p, y, n_bootstrap=300, seed=3)
    assert a == compute_metrics(p, y, n_bootstrap=300, seed=3)
    assert a != compute_metrics(p, y, n_bootstrap=300, seed=4)
    for name in METRIC_NAMES:
        assert a[name]["ci_low"] <= a[name]["value"] <= a[name]["ci_high"], name
    small = compute_metrics(p[:200], y[:200], n_bootstrap=300, seed=3)
    for name in ("auroc", "accuracy", "log_loss", "eer"):
        assert a[name]["ci_high"] - a[name]["ci_low"] < small[name]["ci_high"] - small[name]["ci_low"], name


def test_no_bootstrap_gives_nan_ci() -> None:
    p, y = _scores(100)
    m = compute_metrics(p, y, n_bootstrap=0)
    assert math.isnan(m["auroc"]["ci_low"]) and math.isfinite(m["auroc"]["value"])


def test_accepts_torch_tensors_and_2d_columns() -> None:
    p, y = _scores(200)
    ref = compute_metrics(p, y, n_bootstrap=20)
    assert compute_metrics(torch.from_numpy(p), torch.from_numpy(y), n_bootstrap=20) == ref
    assert compute_metrics(p[:, None], y.astype(bool), n_bootstrap=20) == ref


@pytest.mark.parametrize("only", [0, 1])
def test_one_class_warns_and_returns_nan(only: int) -> None:
    p, _ = _scores(100)
    y = np.full(100, only)
    with pytest.warns(UndefinedMetricWarning, match="single class"):
        m = compute_metrics(p, y, n_bootstrap=20)
    for name in ("auroc", "ap", "eer", "tpr_at_fpr_0.01"):
        assert math.isnan(m[name]["value"]), name
    assert math.isnan(m["eer_threshold"])
    missing = "fake_detection_rate" if only == 0 else "real_detection_rate"
    present = "real_detection_rate" if only == 0 else "fake_detection_rate"
    assert math.isnan(m[missing]["value"])
    for name in ("accuracy", "f1", present, "log_loss", "brier", "ece"):
        assert math.isfinite(m[name]["value"]), name
        assert math.isfinite(m[name]["ci_low"]), name
    assert m["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, (p >= 0.5).astype(int)))


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_metrics([], [])
    with pytest.raises(ValueError, match=r"len\(p_fake\)=3.*len\(labels\)=2"):
        compute_metrics([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_metrics([0.1, 1.2], [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_metrics([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="labels must be 0"):
        compute_metrics([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="threshold"):
        compute_metrics([0.1, 0.2], [0, 1], threshold=1.5)


# --- predictions CSV (deepfake_lightning.evaluation.predictions) ---------------------------------------------


def test_predictions_csv_round_trip(tmp_path) -> None:
    from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv

    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=5) * 3).float()
    p = torch.sigmoid(logits)
    paths = ["a/real_1.png", "b/fake, with comma.jpg", 'c/"quoted".png', "d/ünïcode.png", "e/x.png"]
    labels = torch.tensor([0, 1, 1, 0, 1])
    out = write_predictions_csv(tmp_path / "sub" / "predictions.csv", paths, labels, logits, p)
    assert out.read_text().splitlines()[0] == "path,label,logit,p_fake"
    back = read_predictions_csv(out)
    assert back["path"] == paths
    assert back["label"].dtype == np.int64 and back["label"].tolist() == [0, 1, 1, 0, 1]
    np.testing.assert_array_equal(back["logit"], logits.double().numpy())  # bit-exact
    np.testing.assert_array_equal(back["p_fake"], p.double().numpy())


def test_predictions_csv_validation(tmp_path) -> None:
    from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv

    with pytest.raises(ValueError, match="same length"):
        write_predictions_csv(tmp_path / "p.csv", ["a", "b"], [0, 1], [0.1], [0.5, 0.5])
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na,1\n")
    with pytest.raises(ValueError, match="missing prediction columns"):
        read_predictions_csv(bad)
