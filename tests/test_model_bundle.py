"""One model artifact: train, eval and export write a model bundle; every consumer reads it through one reader."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepfake_lightning.bundle import BundleError, manifest_path, open_model
from deepfake_lightning.eval import evaluate
from deepfake_lightning.inference import Detector, load_detector
from deepfake_lightning.inference.export_model import export_model
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.utils.hashing import sha256_file
from tests.fixtures_inference import face_like_image
from tests.tiny_run import eval_config, shared_tiny_run

RULE = ("calibration.threshold_rule=eer",)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return shared_tiny_run(tmp_path_factory, RULE)


def test_training_writes_the_bundle_beside_the_best_checkpoint(run: tuple[Path, Path, Path]) -> None:
    _, run_dir, data_root = run
    best = run_dir / "checkpoints" / "best.ckpt"
    record = json.loads(manifest_path(best).read_text())
    calibration = json.loads((run_dir / "calibration.json").read_text())
    tested = json.loads((run_dir / "test_results.json").read_text())
    assert record["model_file"] == "best.ckpt" and record["sha256"] == sha256_file(best)
    assert record["format"] == "ckpt" and record["bundle_version"] == 2
    assert (record["temperature"], record["threshold"]) == (
        calibration["temperature"],
        calibration["threshold"],
    )
    assert record["threshold_rule"] == "eer" and record["calibration"]["fitted_on"] == "valid"
    assert record["calibration"]["checkpoint_sha256"] == sha256_file(best)
    assert record["calibration_source"] == "../calibration.json"
    assert record["preprocessing"]["image_size"] == 32
    data = record["training_data"]
    assert data["name"] == "folder" and data["config"]["root"] == str(data_root)
    assert data["images_per_split"] == tested["data"]
    metrics = record["test_metrics"]
    assert (
        metrics["auroc"] == tested["auroc"]
        and metrics["n"] == tested["n"]
        and metrics["checkpoint"] == "best.ckpt"
    )
    assert {"torch", "lightning", "deepfake_lightning"} <= set(record["versions"])
    assert json.loads((run_dir / "run_summary.json").read_text())["bundle"] == str(manifest_path(best))


def test_every_consumer_reads_the_same_bundle(run: tuple[Path, Path, Path]) -> None:
    _, run_dir, _ = run
    best = run_dir / "checkpoints" / "best.ckpt"
    bundle = open_model(best).bundle
    detector = Detector.load(best)
    assert (detector.temperature, detector.threshold) == (bundle.temperature, bundle.threshold)
    card = TestClient(create_app(detector)).get("/v1/model").json()["card"]
    assert card["test_metrics"]["auroc"] == bundle.test_metrics["auroc"]
    assert card["training_data"]["name"] == "folder" and "config" not in card["training_data"]
    assert card["calibration"]["fitted_from"] == "calibration.json" and card["bundle"] == "best.ckpt.json"
    ensemble = load_detector([best, best])
    assert [m.threshold for m in ensemble.members] == [bundle.threshold] * 2


def test_eval_writes_a_servable_bundle_and_refuses_a_foreign_calibration(
    run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    base, run_dir, data_root = run
    best = run_dir / "checkpoints" / "best.ckpt"
    data = ["data=folder", f"data.root={data_root}", "explain.enabled=false"]
    refit = eval_config(base, "eval_bundle_refit", best, [*data, "calibration.refit=true",
                                                          "calibration.threshold_rule=max_f1"])  # fmt: skip
    results = evaluate(refit)
    written = base / "eval_bundle_refit" / "bundle.json"
    bundle = open_model(written).bundle
    assert bundle.source == str(best.resolve()) and bundle.threshold_rule == "max_f1"
    assert bundle.threshold == pytest.approx(results["threshold"])
    assert bundle.test_metrics["auroc"] == results["auroc"] and bundle.test_metrics["data"] == "folder"
    assert bundle.training_data == open_model(best).training_data  # the checkpoint's, not the eval data's
    image = face_like_image(3)
    served = Detector.load(written).predict(image)[0].p_fake
    assert served == pytest.approx(Detector.load(best, calibration=written).predict(image)[0].p_fake)

    other = tmp_path / "other.ckpt"
    other.write_bytes(best.read_bytes() + b"\0")  # other bytes: other weights as far as a SHA-256 can tell
    foreign = base / "eval_bundle_refit" / "calibration.json"
    with pytest.raises(BundleError, match="fitted for weights with SHA-256"):
        open_model(other, calibration=foreign)
    bad = eval_config(base, "eval_bundle_foreign", best, [*data, f"calibration.path={tmp_path / 'x.json'}"])
    (tmp_path / "x.json").write_text(json.dumps({"temperature": 2.0, "checkpoint_sha256": "0" * 64}))
    with pytest.raises(BundleError, match="x.json: fitted for weights"):
        evaluate(bad)


def test_export_carries_the_bundle_and_its_card_says_where_metrics_were_measured(
    run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, run_dir, _ = run
    best = run_dir / "checkpoints" / "best.ckpt"
    model = export_model(best, tmp_path / "model.onnx")
    exported, source = open_model(model).bundle, open_model(best).bundle
    assert exported.format == "onnx" and exported.sha256 == sha256_file(model)
    assert (exported.temperature, exported.threshold) == (source.temperature, source.threshold)
    assert exported.training_data == source.training_data and exported.test_metrics == source.test_metrics
    assert exported.extra["source_checkpoint_sha256"] == sha256_file(best)
    card = TestClient(create_app(Detector.load(model))).get("/v1/model").json()["card"]
    assert (
        "best.ckpt, the checkpoint this onnx model was exported from" in card["test_metrics"]["measured_on"]
    )
    # the checkpoint's own calibration (its bundle) is accepted for the export: fitted for its source
    assert open_model(model, calibration=manifest_path(best)).temperature == source.temperature


def test_a_checkpoint_without_a_bundle_is_uncalibrated_and_says_so(
    run: tuple[Path, Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, run_dir, _ = run
    bare = tmp_path / "run" / "checkpoints" / "best.ckpt"
    bare.parent.mkdir(parents=True)
    bare.write_bytes((run_dir / "checkpoints" / "best.ckpt").read_bytes())
    (tmp_path / "run" / "calibration.json").write_text((run_dir / "calibration.json").read_text())
    with caplog.at_level(logging.WARNING):
        bundle = open_model(bare).bundle
    assert (bundle.temperature, bundle.threshold_rule, bundle.calibration_source) == (1.0, "fixed", None)
    assert "has no bundle manifest best.ckpt.json" in caplog.text
    with pytest.raises(BundleError, match="not a model bundle"):
        open_model(tmp_path / "run" / "calibration.json")
