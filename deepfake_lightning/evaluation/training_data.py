"""Which data an evaluation scores: the data config the checkpoint was trained with, unless ``data=`` is given.

``eval.yaml`` (and ``robustness.yaml``) list ``data: synthetic`` in their defaults only so that the config
composes; scoring a checkpoint on the built-in synthetic set because nobody named its data would report numbers
for the wrong images. So when the command line selects no data config (no ``data=NAME``), the checkpoint's own
run config ``RUN/config.yaml`` (``RUN/checkpoints/best.ckpt``) provides ``data``; ``data.*`` overrides given on the
command line (``data.batch_size=16``) still apply on top of it. The checkpoint's model bundle records that config
(``training_data.config``); a checkpoint without one falls back to its run's ``RUN/config.yaml``: both are read
by the bundle package (``LoadedModel.training_config``). Without either
the command refuses and asks for ``data=...``: evaluating on another set is always explicit.
"""

from __future__ import annotations

import logging

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.bundle import LoadedModel, TrainingConfig
from deepfake_lightning.utils.config_validation import ConfigError

log = logging.getLogger(__name__)


def task_overrides() -> list[Override] | None:
    """The command-line overrides of this Hydra job; None when not run by Hydra (nothing to tell from)."""
    if not HydraConfig.initialized():
        return None
    return OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))


def _training_data(cfg: DictConfig, model: LoadedModel) -> TrainingConfig:
    """The data config the model was trained with, from its bundle (or its run's config.yaml)."""
    found = model.training_config()
    if found is None:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path}: neither a model bundle recording its training data nor a training "
            "config.yaml beside it (RUN/config.yaml for RUN/checkpoints/*.ckpt), so the data it was trained on "
            "is unknown; name the data to evaluate on, e.g. data=folder data.root=/path/to/faces"
        )
    return found


def data_given(overrides: list[Override] | None) -> bool:
    """Whether the command line selects a data config (``data=NAME``); without Hydra, assume it does."""
    return overrides is None or any(
        o.key_or_group == "data" or o.key_or_group.startswith("data/") for o in overrides
    )


def adopt_training_data(cfg: DictConfig, model: LoadedModel) -> str:
    """Replace ``cfg.data`` by the checkpoint's training data config unless ``data=`` was given; returns the
    name of the data config used (also set as ``cfg.data_name``) and logs where it came from."""
    overrides = task_overrides()
    if data_given(overrides):
        name = data_config_name()
        log.info("data: data=%s, as given (root %s)", name, OmegaConf.select(cfg, "data.root", default="?"))
        _set_name(cfg, name)
        return name
    found = _training_data(cfg, model)
    data, name, origin = found.data, found.name, found.origin
    for override in overrides or []:  # data.* overrides from the command line win over the training values
        key = override.key_or_group
        if not key.startswith("data."):
            continue
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(data, parent.removeprefix("data").lstrip("."), default=None)
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
        else:
            OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), force_add=True)
    with open_dict(cfg):
        cfg.data = data
    log.info(
        "data: the checkpoint's training data (data=%s, root %s), from %s", name, data.get("root"), origin
    )
    _set_name(cfg, name)
    return name


def data_config_name(default: str = "data") -> str:
    """The data config chosen for this Hydra job (``folder``, ``faces140k``...), else `default`."""
    try:
        return str(HydraConfig.get().runtime.choices.get("data") or default)
    except ValueError:  # not run by Hydra
        return default


def _set_name(cfg: DictConfig, name: str) -> None:
    with open_dict(cfg):
        cfg.data_name = name  # recorded in the eval run's config.yaml; names the primary cross-dataset row
