"""DDP with Hydra: child command, gathered test predictions, and a real 2-process gloo multirun on CPU."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from deepfake_lightning.distributed.hydra_ddp import hydra_job_command
from deepfake_lightning.distributed.ranks import merge_shards
from tests.conftest import REPO_ROOT, TINY_TRAINER, make_folder_tree
from tests.sweep_helpers import run_train, tiny_synthetic
from tests.tiny_run import shared_tiny_run

# a hang (one rank waiting in a collective the others never join) fails the test instead of blocking CI
HANG_TIMEOUT_S = 240


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


def _lines(text: str, needle: str) -> int:
    return sum(needle in line for line in text.splitlines())


def _train_with_rank_faults(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Two gloo ranks training on a tiny folder; `overrides` set what `tests.ddp_faults.RankFaults` breaks."""
    root = make_folder_tree(tmp_path / "faces", per_class=10, size=40)
    return run_train(
        *TINY_TRAINER,
        "data=folder",
        f"data.root={root}",
        "data.image_size=40",
        "trainer=ddp_cpu",
        "calibration.enabled=false",
        "test=false",
        "+callbacks.faults._target_=tests.ddp_faults.RankFaults",
        *overrides,
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        timeout=HANG_TIMEOUT_S,
    )


def test_ddp_skipped_steps_and_epochs_without_updates_do_not_hang(tmp_path: Path) -> None:
    """Rank 1 gets only unreadable batches in epoch 0 (no update at all) and in every validation; rank 0 gets a
    NaN loss at the first step of epoch 1 (nonfinite_loss=skip). Every rank must skip those steps together."""
    proc = _train_with_rank_faults(
        tmp_path,
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=null",
        "~callbacks.early_stopping",
        "model.nonfinite_loss=skip",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    run = tmp_path / "run"
    assert json.loads((run / "run_summary.json").read_text())["status"] == "ok"
    history = json.loads((run / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert all("val/auroc" in h for h in history)  # from rank 0's images, gathered with rank 1's none
    # epoch 0: rank 0 skips its 2 batches because rank 1 had none; epoch 1: rank 1 skips the first step for
    # rank 0's NaN loss, which rank 0 counts
    assert _lines(proc.stdout, "another DDP rank skipped its batch") == 3, proc.stdout[-4000:]
    assert _lines(proc.stdout, "training loss is nan (1 such batch(es) so far)") == 1
    assert "no train batch was scored in epoch 0" in proc.stdout


def test_ddp_nonfinite_loss_stop_stops_every_rank_with_the_reason(tmp_path: Path) -> None:
    """A NaN loss on rank 1 with nonfinite_loss=stop: rank 1 names its files, rank 0 says why it stops too; no
    rank is left waiting in the gradient all-reduce of a peer that is gone."""
    proc = _train_with_rank_faults(
        tmp_path,
        "+callbacks.faults.empty_rank=-1",
        "+callbacks.faults.nan_rank=1",
        "+callbacks.faults.nan_epoch=0",
    )
    assert proc.returncode != 0
    assert "training loss is nan at global step 0 (epoch 0); batch of 4 image(s)" in proc.stdout, proc.stdout[
        -3000:
    ]
    assert "training stopped at global step 0: another DDP rank had a non-finite loss" in proc.stdout


def test_ddp_eval_gathers_the_predictions_and_writes_them_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base, run, data_root = shared_tiny_run(tmp_path_factory)
    out = base / "eval_ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfake_lightning.eval",
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
            "data=folder",
            f"data.root={data_root}",
            "trainer=ddp_cpu",
            "data.num_workers=0",
            "explain.enabled=false",
            "++trainer.enable_progress_bar=false",
            f"paths.log_dir={base / 'logs'}",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "MPLBACKEND": "Agg"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (run / "predictions.csv").open() as handle:
        expected = sorted(r["path"] for r in csv.DictReader(handle))
    assert sorted(r["path"] for r in rows) == expected  # 4 test images, 2 per rank: each exactly once
    assert json.loads((out / "test_results.json").read_text())["n"] == len(expected)
    assert not (out / "error.json").exists()
    assert not (base / "logs" / "eval").exists()  # rank 1 made no run dir of its own


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ddp_ranks_launched_together_generate_the_synthetic_set_once(tmp_path: Path) -> None:
    """As under SLURM or torchrun, both ranks start at once (LOCAL_RANK set, nothing re-launched): only local
    rank 0 writes images; rank 1 waits for the finished set instead of writing the same files over it."""
    port = str(_free_port())
    args = [
        *tiny_synthetic(tmp_path),
        "data.generator_workers=1",
        "trainer=ddp_cpu",
        "test=false",
        "calibration.enabled=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "MPLBACKEND": "Agg",
            "WANDB_MODE": "offline",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
            "NODE_RANK": "0",
            "LOCAL_RANK": str(rank),
        }
        counter = tmp_path / f"written_rank{rank}.txt"
        command = [
            sys.executable,
            "tests/count_synthetic_writes.py",
            str(counter),
            "deepfake_lightning.train",
        ]
        procs.append(
            subprocess.Popen(
                command + args,
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=HANG_TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    written = [int((tmp_path / f"written_rank{rank}.txt").read_text()) for rank in (0, 1)]
    assert written == [2 * (8 + 4 + 4), 0], written  # n_train, n_valid, n_test per class
    assert json.loads((tmp_path / "run" / "run_summary.json").read_text())["status"] == "ok"
