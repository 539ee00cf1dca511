"""`python -m deepfake_lightning.data.shard data.root=DIR out=DIR [splits=RUN/splits.csv]`: a folder data set as
LitData shards (data/shard_writer.py; the layout: data/shard_format.py), for `data=streaming data.uri=DIR`.

The split, labels and groups are the ones `data=...` computes (its `split_ratios`, `split_seed`, `group_by`, ...),
or those of a `splits.csv` when given, so a model trained on the shards is trained on exactly the folder's split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.shard_writer import write_shards
from deepfake_lightning.data.split_manifest import read_split_manifest
from deepfake_lightning.utils.config_schema import ShardSettings
from deepfake_lightning.utils.config_validation import ConfigError, require_litdata, validate_data
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def _source(cfg: DictConfig) -> DeepfakeDataModule:
    """The data module whose files and split are sharded: any folder-backed one, never shards themselves."""
    from deepfake_lightning.data.streaming_datamodule import StreamingDataModule

    source = instantiate(cfg.data)
    if not isinstance(source, DeepfakeDataModule) or isinstance(source, StreamingDataModule):
        raise ConfigError(
            f"data._target_={cfg.data._target_}: expected a data config of image files (folder, faces140k, synthetic)"
        )
    if source.fakes == "self_blend":
        raise ConfigError(
            "data.fakes=self_blend: shards hold a set's own files; shard it with data.fakes=dataset and keep "
            "self_blend for data=folder training"
        )
    return source


def shard(cfg: DictConfig) -> dict[str, Any]:
    settings = ShardSettings.check({key: cfg.get(key) for key in ShardSettings.model_fields})
    validate_data(cfg)
    require_litdata("python -m deepfake_lightning.data.shard")
    source = _source(cfg)
    if settings.splits is not None:
        if not Path(settings.splits).is_file():
            raise ConfigError(f"splits={str(settings.splits)!r}: file not found; expected a splits.csv")
        index, groups = read_split_manifest(settings.splits)
        log.info("split from %s", settings.splits)
    else:
        source.setup()
        assert source.index is not None
        index, groups = source.index, source.groups
    meta = write_shards(
        index,
        groups,
        source.root,
        settings.out,
        settings.chunk_bytes,
        settings.num_workers,
        settings.shuffle_seed,
        settings.overwrite,
        {"data": OmegaConf.to_container(cfg.data, resolve=True), "splits": settings.splits},
    )
    for split, counts in meta["counts"].items():
        log.info("shards %s: %d real, %d fake", split, counts["real"], counts["fake"])
    log.info("shards written to %s (train with data=streaming data.uri=%s)", settings.out, settings.out)
    return {"status": "ok", **meta}


@hydra_main("shard")
def main(cfg: DictConfig) -> None:
    run_task(shard, cfg)


if __name__ == "__main__":
    main()
