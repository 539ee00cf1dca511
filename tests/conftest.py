"""Shared fixtures: Hydra composition with CPU-only tiny limits, small on-disk datasets, the shared LFW set."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from PIL import Image

import deepfake_lightning  # noqa: F401  (registers the configs' resolvers, e.g. ${dfl_cwd:} in paths/)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
LFW_DIR = REPO_ROOT.parent / "shared" / "data" / "lfw_faceswap"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def lfw_dir() -> Path:
    if not (LFW_DIR / "real").is_dir():
        pytest.skip(
            f"shared LFW face-swap set not found at {LFW_DIR} (it lives in ../shared beside the repo)"
        )
    return LFW_DIR


def write_image(path: Path, seed: int, size: int = 48, fmt: str = "JPEG") -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, fmt)
    return path


def make_140k_tree(base: Path, per_class: int = 4, with_csv: bool = True, size: int = 48) -> Path:
    """A miniature Kaggle 140k layout; returns the `real-vs-fake` root (CSVs two levels up, as on Kaggle)."""
    root = base / "real_vs_fake" / "real-vs-fake"
    seed = 0
    for split in ("train", "valid", "test"):
        rows = ["original_path,id,label,label_str,path"]
        for cls, label in (("real", 1), ("fake", 0)):
            for i in range(per_class):
                name = f"{cls}{i:03d}.jpg"
                write_image(root / split / cls / name, seed, size)
                seed += 1
                rows.append(f"x,{name},{label},{cls},{split}/{cls}/{name}")
        if with_csv:
            (base / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def make_folder_tree(base: Path, per_class: int = 10, size: int = 48) -> Path:
    for cls in ("real", "fake"):
        for i in range(per_class):
            write_image(base / cls / f"{cls}_{i}.jpg", seed=hash((cls, i)) % 10_000, size=size)
    return base


TINY_TRAINER = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "~callbacks.rich_progress_bar",
    "+trainer.enable_progress_bar=false",
    "data.num_workers=0",
    "data.batch_size=4",
    "data.image_size=32",
]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """compose_cfg("train", overrides) -> a resolved-able config whose outputs go to tmp_path."""
    GlobalHydra.instance().clear()

    def _compose(
        config_name: str = "train", overrides: list[str] | None = None, tiny: bool = True
    ) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            extra = list(TINY_TRAINER) if tiny and config_name == "train" else []
            cfg = compose(
                config_name=config_name, overrides=extra + list(overrides or []), return_hydra_config=True
            )
        with open_dict(cfg):
            cfg.paths.root_dir = str(REPO_ROOT)
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.data_dir = str(tmp_path / "data")
            cfg.paths.work_dir = str(REPO_ROOT)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # kept by HydraConfig for ${hydra:...}; entry points never see it
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
