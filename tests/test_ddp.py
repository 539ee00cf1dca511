"""DDP with Hydra: child command, gathered test predictions, and a real 2-process gloo multirun on CPU."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from deepfake_lightning.distributed.hydra_ddp import hydra_job_command
from deepfake_lightning.distributed.ranks import merge_shards
from tests.sweep_helpers import run_train, tiny_synthetic


def test_merge_shards_restores_order_and_drops_sampler_padding() -> None:
    # DistributedSampler over 5 items and 2 ranks: rank 0 gets 0, 2, 4; rank 1 gets 1, 3 and item 0 as padding
    shards = [
        {"path": ["a", "c", "e"], "target": [0, 0, 1], "logit": [0.1, 0.3, 0.5]},
        {"path": ["b", "d", "a"], "target": [1, 1, 0], "logit": [0.2, 0.4, 0.1]},
    ]
    merged = merge_shards(shards)
    assert merged == {
        "path": ["a", "b", "c", "d", "e"],
        "target": [0, 1, 0, 1, 1],
        "logit": [0.1, 0.2, 0.3, 0.4, 0.5],
    }


def test_child_command_reruns_this_job_not_the_sweep(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    job_dir = tmp_path / "multiruns" / "x" / "3"
    hydra_cfg = {
        "overrides": {"task": ["+experiment=fast", "model.attention.enabled=false"]},
        "runtime": {"output_dir": str(job_dir), "cwd": str(tmp_path)},
    }
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: OmegaConf.create(hydra_cfg)))
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    argv = [
        "train.py",
        "-m",
        "--config-name",
        "train",
        "+experiment=fast",
        "model.attention.enabled=true,false",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    command, cwd = hydra_job_command(local_rank=1)
    assert command[0] == sys.executable and cwd == str(tmp_path)
    args = command[command.index("--config-name") :]
    assert args == [
        "--config-name",
        "train",
        "+experiment=fast",
        "model.attention.enabled=false",
        "hydra.mode=RUN",
        f'hydra.run.dir="{job_dir}"',
        "hydra.job.name=ddp_rank_1",
        "hydra.output_subdir=null",
    ]
    assert "model.attention.enabled=true,false" not in command and "-m" not in args


def test_ddp_cpu_multirun_one_dir_per_job_with_all_test_predictions(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train(
        "-m",
        *tiny_synthetic(tmp_path),
        "trainer=ddp_cpu",
        "data.n_test=5",  # 10 test images: 5 per rank, so the gathered file must hold both shards
        "trainer.limit_test_batches=null",
        "model.attention.enabled=true,false",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (tmp_path / "logs" / "train" / "runs").exists()  # no stray run dirs from the ranks > 0
    for job in ("0", "1"):
        run = sweep / job
        summary = json.loads((run / "run_summary.json").read_text())
        assert summary["status"] == "ok" and "test" in summary  # rank 1 did not overwrite rank 0's file
        with (run / "predictions.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 10 and len({r["path"] for r in rows}) == 10
        assert json.loads((run / "test_results.json").read_text())["n"] == 10
        assert not (run / "error.json").exists()
    jobs = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert [j["status"] for j in jobs] == ["ok", "ok"]


def test_slurm_launcher_config_runs_one_task_per_device() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert cfg.trainer.strategy._target_ == "deepfake_lightning.distributed.HydraDDPStrategy"
