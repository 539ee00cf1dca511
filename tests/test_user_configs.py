"""Users add their own experiments without forking: `hydra.searchpath` or `--config-dir` with experiment/*.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from deepfake_lightning.distributed.hydra_ddp import hydra_job_command

# a user's own experiment: the built-in `fast` recipe, shrunk, with its own tag to find it by
MINE = """\
# @package _global_
defaults:
  - /experiment/fast
tags: [mine]
data:
  n_train: 8
  n_valid: 4
  n_test: 4
  image_size: 40
  generator_workers: 1
"""


def _user_configs(tmp_path: Path) -> Path:
    folder = tmp_path / "my_configs"
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / "mine.yaml").write_text(MINE)
    return folder


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The command as a user types it, from a folder of their own (not the checkout)."""
    env = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    env.pop("PROJECT_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "deepfake_lightning.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_searchpath_experiment_runs_with_debug_fdr(tmp_path: Path) -> None:
    configs = _user_configs(tmp_path)
    proc = _train(
        [
            f"hydra.searchpath=[file://{configs}]",
            "+experiment=mine",
            "debug=fdr",
            "~callbacks.rich_progress_bar",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "debug" / "runs").iterdir()  # debug runs go apart, under logs/debug
    config = OmegaConf.load(run_dir / "config.yaml")
    assert list(config.tags) == ["mine"] and config.data.n_train == 8 and config.trainer.fast_dev_run is True
    assert config.trainer.max_time == "00:00:04:00"  # inherited from the packaged experiment/fast
    assert json.loads((run_dir / "test_results.json").read_text())["n"] == 8
    assert "CONFIG\n" in proc.stdout and "── trainer" in proc.stdout  # the start-up config tree


def test_config_dir_experiment_composes(tmp_path: Path) -> None:
    configs = _user_configs(tmp_path)
    proc = _train(["--config-dir", str(configs), "+experiment=mine", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job = OmegaConf.create(proc.stdout)
    assert list(job.tags) == ["mine"] and job.data.n_train == 8 and job.trainer.max_epochs == 12


def test_ddp_ranks_get_the_users_searchpath(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Ranks > 0 re-run the job; without the searchpath their `+experiment=mine` would not compose."""
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    hydra_cfg = {
        "overrides": {"task": ["+experiment=mine"], "hydra": [searchpath, "hydra.verbose=true"]},
        "runtime": {"output_dir": str(tmp_path / "run"), "cwd": str(tmp_path)},
    }
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: OmegaConf.create(hydra_cfg)))
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(sys, "argv", ["train.py", searchpath, "+experiment=mine"])
    command, _ = hydra_job_command(local_rank=1)
    assert command.count(searchpath) == 1 and command.index(searchpath) < command.index("+experiment=mine")
    assert "hydra.verbose=true" not in command
