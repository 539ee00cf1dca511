"""The data config a model was trained with: the one its bundle records, else its run's `RUN/config.yaml`.

The run-folder fallback serves checkpoints written before bundles recorded their training data
(`RUN/checkpoints/best.ckpt` -> `RUN/config.yaml`, its data config's name from `RUN/.hydra/hydra.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass
class TrainingConfig:
    """The resolved data config, the name of the data config (`folder`, `faces140k`...) and the file it came from."""

    data: DictConfig
    name: str
    origin: Path


def training_config_path(weights: str | Path) -> Path | None:
    """``RUN/config.yaml`` of a ``RUN/checkpoints/*.ckpt`` (or a config.yaml beside the file), if it is a
    training config (it has ``model`` and ``data``)."""
    weights = Path(weights)
    candidates = [weights.parent / "config.yaml"]
    if weights.parent.name == "checkpoints":
        candidates.insert(0, weights.parent.parent / "config.yaml")
    for path in candidates:
        if path.is_file():
            saved = OmegaConf.load(path)
            if isinstance(saved, DictConfig) and "model" in saved and "data" in saved:
                return path
    return None


def _choice(run_config: Path) -> str:
    """The data config's name (``folder``, ``faces140k``...) from the run's ``.hydra/hydra.yaml``, if kept."""
    hydra_file = run_config.parent / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        choice = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.data", default=None)
        if choice:
            return str(choice)
    return "training data"


def training_config(
    recorded: dict[str, Any] | None, weights: str | Path, manifest: str | None
) -> TrainingConfig | None:
    """From the bundle's `training_data` record, else the weights' run folder; None when neither knows."""
    recorded = recorded or {}
    if isinstance(recorded.get("config"), dict):
        name = str(recorded.get("name") or "training data")
        return TrainingConfig(OmegaConf.create(recorded["config"]), name, Path(str(manifest)))
    run_config = training_config_path(weights)
    if run_config is None:
        return None
    return TrainingConfig(OmegaConf.load(run_config).data, _choice(run_config), run_config)
