"""Integration: train -> files -> eval gives the same metrics -> resume from last.ckpt."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import open_dict

from deepfake_lightning.eval import evaluate
from deepfake_lightning.train import train
from tests.conftest import make_140k_tree, make_folder_tree

RUN_FILES = [
    "config.yaml",
    "model_info.json",
    "splits.csv",
    "training_history.json",
    "training_progress.png",
    "test_results.json",
    "predictions.csv",
    "confusion_matrix.png",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
]
METRIC_KEYS = ["auroc", "ap", "eer", "accuracy", "f1", "real_detection_rate", "fake_detection_rate"]


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    return make_folder_tree(tmp_path / "faces", per_class=10)


def test_train_writes_run_files_and_eval_matches(compose_cfg, folder_root: Path, tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["data=folder", f"data.root={folder_root}", "trainer.max_epochs=2"])
    results = train(cfg)
    run = Path(cfg.paths.output_dir)
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    history = json.loads((run / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert {"train/loss", "val/loss", "val/auroc", "val/confusion_matrix"} <= set(history[0])
    test = json.loads((run / "test_results.json").read_text())
    for key in METRIC_KEYS:
        assert 0.0 <= test[key]["value"] <= 1.0, key
    assert test["n"] == sum(sum(row) for row in test["confusion_matrix"])
    assert "val/auroc" in results

    eval_cfg = compose_cfg(
        "eval",
        [
            "data=folder",
            f"data.root={folder_root}",
            "data.num_workers=0",
            f"ckpt_path={run / 'checkpoints/best.ckpt'}",
        ],
    )
    with open_dict(eval_cfg):
        eval_cfg.paths.output_dir = str(tmp_path / "eval")
        eval_cfg.data.image_size = cfg.data.image_size
        eval_cfg.trainer.accelerator = "cpu"
        eval_cfg.trainer.enable_progress_bar = False
    again = evaluate(eval_cfg)
    for key in METRIC_KEYS:
        assert again[key]["value"] == pytest.approx(test[key]["value"], abs=1e-6), key
    assert (tmp_path / "eval" / "predictions.csv").read_text() == (run / "predictions.csv").read_text()
    assert (tmp_path / "eval" / "splits.csv").read_text() == (run / "splits.csv").read_text()  # same split


def test_resume_from_last_checkpoint(compose_cfg, folder_root: Path) -> None:
    cfg = compose_cfg(
        "train", ["data=folder", f"data.root={folder_root}", "trainer.max_epochs=1", "test=false"]
    )
    first_run = Path(cfg.paths.log_dir) / "train" / "runs" / "first"
    with open_dict(cfg):
        cfg.paths.output_dir = str(first_run)
    train(cfg)
    resumed = compose_cfg(
        "train",
        ["data=folder", f"data.root={folder_root}", "trainer.max_epochs=2", "ckpt_path=last", "test=false"],
    )
    with open_dict(resumed):
        resumed.paths.output_dir = str(first_run.parent / "resumed")
    train(resumed)
    history = json.loads((first_run.parent / "resumed" / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]  # epoch 0 came from the checkpoint, epoch 1 was trained


@pytest.mark.parametrize("experiment", ["fast", "advanced_v2", "faceswap_scratch"])
def test_fast_dev_run_every_experiment(compose_cfg, tmp_path: Path, experiment: str) -> None:
    root = make_140k_tree(tmp_path / "k140", per_class=4)
    overrides = [
        f"+experiment={experiment}",
        "trainer.fast_dev_run=true",
        "model.backbone.weights=null",
        "data.num_workers=0",
        "data.batch_size=4",
        "data.image_size=32",
        "trainer.accelerator=cpu",
    ]
    if experiment == "advanced_v2":
        overrides.append(f"data.root={root}")
    elif experiment == "faceswap_scratch":
        overrides.append(f"data.root={make_folder_tree(tmp_path / 'fs', per_class=10)}")
    cfg = compose_cfg("train", overrides, tiny=False)
    with open_dict(cfg):
        cfg.callbacks.pop("rich_progress_bar", None)
    if experiment == "fast":
        cfg.data.n_train, cfg.data.n_valid, cfg.data.n_test = 8, 4, 4
    results = train(cfg)
    assert results["status"] == "ok"
    assert json.loads((Path(cfg.paths.output_dir) / "test_results.json").read_text())["n"] > 0


def test_unreadable_training_image_is_skipped_counted_and_logged(
    compose_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "faces"
    for split in ("train", "valid", "test"):
        make_folder_tree(root / split, per_class=4)
    (root / "train" / "fake" / "fake_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    # one batch holds all 9 training images: with 4 per batch, drop_last may leave the broken one out of the epoch
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", "test=false", "data.batch_size=16"])
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 10
    with caplog.at_level(logging.WARNING):
        train(cfg)
    report = json.loads((Path(cfg.paths.output_dir) / "skipped_images.json").read_text())
    assert [Path(p).name for p in report["train"]] == ["fake_broken.jpg"]
    assert "skipped 1 unreadable image(s) in train" in caplog.text
