"""Numbers are for the checkpoint and data they claim: eval's data config, test-only runs, the best checkpoint of a
resumed run, and the threshold the logged metrics were computed at."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from deepfake_lightning.bundle import read_checkpoint
from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from deepfake_lightning.train import train
from deepfake_lightning.utils.task import run_task
from tests.conftest import make_folder_tree
from tests.tiny_run import compose_at, eval_config, shared_tiny_run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return shared_tiny_run(tmp_path_factory)


def _logits(path: Path) -> dict[str, float]:
    preds = read_predictions_csv(path)
    return dict(zip(preds["path"], preds["logit"].tolist(), strict=True))


# -- eval ckpt_path=X without data=: X's own training data ------------------------------------------------------


def test_eval_without_data_scores_the_checkpoints_training_data(tiny, caplog) -> None:  # noqa: ANN001
    base, run, data_root = tiny
    cfg = eval_config(base, "eval_own_data", run / "checkpoints" / "best.ckpt", ["data.batch_size=2"])
    with caplog.at_level(logging.INFO):
        evaluate(cfg)
    assert cfg.data.root == str(data_root) and cfg.data.layout == "folder"
    assert cfg.data.batch_size == 2  # a data.* override still applies on top of the training config
    bundle = run / "checkpoints" / "best.ckpt.json"  # recorded by training in the model bundle
    assert f"the checkpoint's training data (data=folder, root {data_root}), from {bundle}" in caplog.text
    out = base / "eval_own_data"
    assert _logits(out / "predictions.csv") == pytest.approx(_logits(run / "predictions.csv"), abs=1e-5)
    assert not list((base / "data").glob("synthetic*"))  # the built-in set was neither generated nor scored


def test_eval_without_data_refuses_when_the_training_config_is_gone(tiny) -> None:  # noqa: ANN001
    base, run, data_root = tiny
    alone = base / "moved" / "model.ckpt"
    alone.parent.mkdir(exist_ok=True)
    shutil.copyfile(run / "checkpoints" / "best.ckpt", alone)
    cfg = eval_config(base, "eval_moved", alone, [])
    with pytest.raises(SystemExit) as info:
        run_task(evaluate, cfg)
    message = str(info.value.code)
    assert message.startswith("Invalid config: ") and "\n" not in message
    assert str(alone) in message and "data=folder data.root=" in message
    assert not (base / "eval_moved" / "predictions.csv").exists()
    shutil.copyfile(run / "checkpoints" / "best.ckpt.json", alone.with_name("model.ckpt.json"))
    (alone.parent / "model.ckpt.json").write_text(
        (alone.parent / "model.ckpt.json").read_text().replace('"best.ckpt"', '"model.ckpt"')
    )
    moved = eval_config(base, "eval_moved_bundle", alone, [])  # with its bundle, the run folder is not needed
    evaluate(moved)
    assert moved.data.root == str(data_root) and moved.data_name == "folder"


# -- train=false test=true ---------------------------------------------------------------------------------------


def test_test_only_scores_the_given_checkpoint(tiny) -> None:  # noqa: ANN001
    base, run, data_root = tiny
    ckpt = run / "checkpoints" / "best.ckpt"
    overrides = ["data=folder", f"data.root={data_root}", "train=false", f"ckpt_path={ckpt}"]
    results = train(compose_at("train", overrides, base / "test_only", base))
    assert results["test"]["checkpoint"] == str(ckpt)
    tested = _logits(base / "test_only" / "predictions.csv")
    assert tested == pytest.approx(_logits(run / "predictions.csv"), abs=1e-5)  # its weights, not fresh ones


def test_test_only_without_a_checkpoint_refuses_and_points_to_eval(compose_cfg, tmp_path: Path) -> None:  # noqa: ANN001
    root = make_folder_tree(tmp_path / "faces", per_class=4)
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", "train=false"])
    with pytest.raises(SystemExit) as info:
        run_task(train, cfg)
    message = str(info.value.code)
    assert "\n" not in message and "train=false test=true needs ckpt_path=" in message
    assert "python -m deepfake_lightning.eval ckpt_path=" in message
    assert not (Path(cfg.paths.output_dir) / "test_results.json").exists()


# -- resume (ckpt_path=...last.ckpt into a new run dir) keeps the best ------------------------------------------


def _resume_cfg(compose_cfg, root: Path, name: str, tmp_path: Path, extra: list[str]):  # noqa: ANN001, ANN202
    cfg = compose_cfg(
        "train",
        [
            "data=folder",
            f"data.root={root}",
            "~callbacks.early_stopping",
            "calibration.enabled=false",
            *extra,
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / name)
    return cfg


def test_resume_into_a_new_run_dir_keeps_the_best_score_and_file(compose_cfg, tmp_path: Path) -> None:  # noqa: ANN001
    """Monitoring `step` with mode=min makes epoch 0 the best forever: after resuming, epoch 1 must not replace
    it (Lightning alone restores the score only into the same dir, so epoch 1 became "best since the resume")."""
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    monitor = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=min", "test=false"]
    first = train(_resume_cfg(compose_cfg, root, "first", tmp_path, monitor))
    resumed_cfg = _resume_cfg(
        compose_cfg,
        root,
        "resumed",
        tmp_path,
        [*monitor, "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"],
    )
    resumed = train(resumed_cfg)
    assert (
        read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")["epoch"] == 1
    )  # it did train on
    best = tmp_path / "resumed" / "checkpoints" / "best.ckpt"
    assert resumed["val/auroc"] == first["val/auroc"] == 2.0  # the value sweepers get: epoch 0's (2 steps)
    assert Path(resumed["best_checkpoint"]) == best
    original = read_checkpoint(tmp_path / "first" / "checkpoints" / "best.ckpt")
    copied = read_checkpoint(best)
    assert copied["epoch"] == 0
    assert all(torch.equal(copied["state_dict"][k], v) for k, v in original["state_dict"].items())

    (tmp_path / "first" / "checkpoints" / "best.ckpt").unlink()  # the best of the resumed run is gone: refuse
    again = _resume_cfg(
        compose_cfg,
        root,
        "again",
        tmp_path,
        [*monitor, "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"],
    )
    with pytest.raises(SystemExit) as info:
        run_task(train, again)
    message = str(info.value.code)
    assert "the best checkpoint of the run being resumed is missing" in message and "\n" not in message


def test_training_order_and_augmentations_depend_only_on_seed_and_epoch() -> None:
    from omegaconf import OmegaConf

    from deepfake_lightning.data.epoch_sampler import EpochSampler
    from deepfake_lightning.data.transforms import build_train_transform
    from tests.conftest import CONF_DIR

    third = list(EpochSampler(10, seed=3, epoch=2))
    fresh = EpochSampler(10, seed=3)
    list(fresh), list(fresh)  # epochs 0 and 1 (under DDP a wrapper iterates without set_epoch)
    assert list(fresh) == third and sorted(i for i, _ in third) == list(range(10))
    assert list(EpochSampler(10, seed=3, epoch=1)) != third != list(EpochSampler(10, seed=4, epoch=2))
    base = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / "_base.yaml"), resolve=True)
    transform = build_train_transform(32, "resize", base["augment"], base["normalize"])
    image = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    first = transform(image, seed=5)
    transform(image, seed=6), transform(image)  # other samples, and an unseeded call, in between
    assert torch.equal(transform(image, seed=5), first)
    assert any(not torch.equal(transform(image, seed=s), first) for s in range(6, 12))  # it does augment


def test_resumed_epochs_repeat_the_uninterrupted_run(compose_cfg, tmp_path: Path) -> None:  # noqa: ANN001
    """Same seed: 2 epochs straight, or stopped after epoch 0 then resumed from its last.ckpt, give the same
    weights and best (data order, augmentations and dropout depend on (seed, epoch) only)."""
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    # best = the last epoch (its weights are compared); the same max_epochs, so the same LR schedule
    common = ["test=false", "callbacks.model_checkpoint.monitor=step", "trainer.max_epochs=2"]
    straight = train(_resume_cfg(compose_cfg, root, "straight", tmp_path, common))
    stop = ["+callbacks.stop._target_=tests.kill_point.StopAfterEpoch", "+callbacks.stop.epoch=0"]
    train(_resume_cfg(compose_cfg, root, "half", tmp_path, [*common, *stop]))  # interrupted after epoch 0
    last = tmp_path / "half" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["epoch"] == 0
    resumed = train(_resume_cfg(compose_cfg, root, "resumed", tmp_path, [*common, f"ckpt_path={last}"]))
    assert resumed["val/auroc"] == straight["val/auroc"]
    a = read_checkpoint(tmp_path / "straight" / "checkpoints" / "best.ckpt")
    b = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "best.ckpt")
    assert a["epoch"] == b["epoch"] == 1
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


# -- logged metrics say their threshold ---------------------------------------------------------------------------


def test_logged_threshold_metrics_are_named_at_0_5_and_computed_there(tiny) -> None:  # noqa: ANN001
    """Lightning logs accuracy and rates at an uncalibrated 0.5; test_results.json uses the calibrated rule.
    The names say which is which, and the logged value is the accuracy of logit >= 0 on the test predictions."""
    _, run, _ = tiny
    with (run / "csv" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    for stage in ("val", "test"):
        for name in ("accuracy", "f1", "real_detection_rate", "fake_detection_rate"):
            assert f"{stage}/{name}@0.5" in columns and f"{stage}/{name}" not in columns, (stage, name)
    logged = [float(r["test/accuracy@0.5"]) for r in rows if r["test/accuracy@0.5"]]
    preds = read_predictions_csv(run / "predictions.csv")
    assert logged == pytest.approx([np.mean((preds["logit"] >= 0) == (preds["label"] == 1))])
