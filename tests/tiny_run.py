"""Tiny trained runs for the evaluation tests: composed like ``compose_cfg`` but for module-scoped fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from deepfake_lightning.train import train
from tests.conftest import CONF_DIR, REPO_ROOT, TINY_TRAINER, make_folder_tree

EVAL_CPU = ["trainer.accelerator=cpu", "+trainer.enable_progress_bar=false", "data.num_workers=0"]


def compose_at(config_name: str, overrides: list[str], output_dir: Path, base: Path) -> DictConfig:
    """Compose ``config_name`` with outputs in ``output_dir`` and logs/data under ``base``."""
    GlobalHydra.instance().clear()
    extra = list(TINY_TRAINER) if config_name == "train" else []
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=extra + overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO_ROOT)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(base / "logs")
        cfg.paths.data_dir = str(base / "data")
        cfg.paths.work_dir = str(REPO_ROOT)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train_tiny_run(base: Path, extra: list[str] | None = None, per_class: int = 20) -> tuple[Path, Path]:
    """Train 1 epoch on a random {real,fake} folder at 32 px (valid and test: 2 real + 2 fake, one batch each).

    Returns (run dir, data root).
    """
    data_root = make_folder_tree(base / "faces", per_class=per_class)
    run_dir = base / "train_run"
    overrides = ["data=folder", f"data.root={data_root}", *(extra or [])]
    train(compose_at("train", overrides, run_dir, base))
    return run_dir, data_root


def eval_config(base: Path, name: str, ckpt: Path, overrides: list[str]) -> DictConfig:
    return compose_at("eval", [*EVAL_CPU, f"ckpt_path={ckpt}", *overrides], base / name, base)


_TRAINED: dict[tuple[str, ...], tuple[Path, Path, Path]] = {}


def shared_tiny_run(factory: pytest.TempPathFactory, extra: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """(base dir, run dir, data root) of a tiny run, trained once per test session for each ``extra``.

    Training is the slow part of every evaluation test (tens of seconds on 2 busy cores); the evaluation
    modules only read the run, so their module-scoped fixtures share it.
    """
    if extra not in _TRAINED:
        base = factory.mktemp("tiny_run")
        _TRAINED[extra] = (base, *train_tiny_run(base, list(extra)))
    return _TRAINED[extra]
