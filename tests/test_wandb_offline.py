"""logger=wandb with WANDB_MODE=offline and no account: what the run holds, read back from its run file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from deepfake_lightning.callbacks.wandb_media import pick_samples
from deepfake_lightning.loggers import wandb_run_names
from deepfake_lightning.train import train
from tests.conftest import make_folder_tree
from tests.wandb_records import read_offline_run


def test_wandb_offline_run_logs_config_metrics_media_and_checkpoint(
    compose_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    cfg = compose_cfg(
        "train",
        [
            "data=folder",
            f"data.root={root}",
            "trainer.max_epochs=2",
            "logger=wandb",
            "tags=[test,offline]",
            "data.image_size=40",
        ],
    )
    try:
        train(cfg)
    finally:
        wandb.finish()
    (run_dir,) = (Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run["finished"]

    assert run["run"]["job_type"] == "train" and run["run"]["tags"] == ["test", "offline"]
    assert run["config"]["model"]["loss"]["name"] == "focal"  # the resolved config
    assert run["config"]["data"]["image_size"] == 40

    history = run["history"]
    epochs = [h for h in history if "val/auroc" in h]
    assert sorted({h["epoch"] for h in epochs}) == [0, 1]  # per-epoch metrics
    assert all(0 <= h["val/auroc"] <= 1 for h in epochs)
    confusions = [h for h in history if "val/confusion_matrix/_type" in h]
    assert len(confusions) == 2 and confusions[0]["val/confusion_matrix/_type"] == "image-file"
    logged = set().union(*history)
    for key in ("test/roc", "test/pr", "test/confusion_matrix", "test/predictions_table"):
        assert any(k.startswith(key + "_table") or k.startswith(key + "/") for k in logged), sorted(logged)
    assert "test/sample_predictions/_type" in logged and "test/roc_image/_type" in logged
    for path in [h[k] for h in history for k in h if k.endswith("/path") and k.startswith(("val/", "test/"))]:
        assert (run_dir / "files" / path).is_file(), path

    models = [a for a in run["artifacts"] if a["type"] == "model"]
    assert len(models) == 1 and models[0]["files"] == ["best.ckpt"]


def test_run_names_group_multirun_jobs_by_sweep() -> None:
    from hydra.types import RunMode

    hydra_cfg = OmegaConf.create(
        {
            "mode": RunMode.MULTIRUN,
            "sweep": {"dir": "/logs/train/multiruns/2026-01-01_10-00-00"},
            "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
            "job": {"num": 3, "override_dirname": "model.loss.name=bce", "name": "train"},
            "runtime": {"choices": {"experiment": "fast"}, "output_dir": "/logs/x/3"},
        }
    )
    names = wandb_run_names(hydra_cfg)
    assert names == {
        "group": "fast/2026-01-01_10-00-00",
        "job_type": "sweep",
        "name": "2026-01-01_10-00-00/3 model.loss.name=bce",
    }


def test_sample_picks_cover_both_classes_and_the_score_range() -> None:
    labels = np.array([0] * 10 + [1] * 4)
    p_fake = np.linspace(0, 1, 14)
    picked = pick_samples(labels, p_fake, 6)
    assert picked == [0, 4, 9, 10, 12, 13]
