"""Start-up checks of a composed config, so a typo fails in a second with the key named, not an hour in.

Types, ranges, choices and unknown keys are the schema's (`utils/config_schema.py`): each node is checked against
the schema its `_target_` class names in `config_schema` (DeepfakeDataModule -> DataSettings, DetectorModule ->
ModelSettings), the trainer against `TrainerSettings`. The classes check their own arguments with the same
schema. What needs more than the values is checked here: folders and files that must exist, and
`freeze_first_n` against the backbone's tensor count.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.data.index import DatasetLayoutError
from deepfake_lightning.data.labels_csv import resolve_labels_csv
from deepfake_lightning.models.backbones import backbone_tensor_count, build_backbone
from deepfake_lightning.utils.config_schema import (
    ConfigError,
    FeatureCacheSettings,
    ModelSettings,
    MultiDataSettings,
    Settings,
    StreamingDataSettings,
    SyntheticDataSettings,
    TrainerSettings,
    check_freeze_first_n,
    import_target,
)

__all__ = ["ConfigError", "validate_config", "validate_data", "validate_model", "validate_run"]


def schema_of(cfg: DictConfig, key: str) -> type[Settings] | None:
    """The schema of node `key`: its `_target_` class's `config_schema`; None for a class without one."""
    target = OmegaConf.select(cfg, f"{key}._target_", default=None)
    if target is None:
        return None
    try:
        cls = import_target(str(target))
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{key}._target_={target!r}: cannot import it ({err})") from None
    return getattr(cls, "config_schema", None)


def validate_data(cfg: DictConfig) -> None:
    schema = schema_of(cfg, "data")
    if schema is None:
        return
    schema.check(cfg.data)
    if issubclass(schema, SyntheticDataSettings):
        return  # generated under data.out_dir
    if issubclass(schema, StreamingDataSettings):
        validate_shards(cfg)
        return
    if issubclass(schema, MultiDataSettings):
        validate_sources(cfg)
        return
    root = OmegaConf.select(cfg, "data.root", default=None)
    if root is not None and not Path(root).is_dir():
        raise ConfigError(
            f"data.root={root!r}: folder not found; for faces140k expected "
            "real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}, for folder data root/{real,fake}"
        )
    validate_grouping(cfg)


def validate_shards(cfg: DictConfig) -> None:
    """LitData must be installed, and a local `data.uri` must be a shard folder (a URL is read at set-up)."""
    from deepfake_lightning.data.shard_format import META_NAME, is_remote

    require_litdata("data=streaming")
    uri = str(cfg.data.uri)
    if not is_remote(uri) and not (Path(uri) / META_NAME).is_file():
        raise ConfigError(
            f"data.uri={uri!r}: no {META_NAME} there; expected a folder written by "
            "python -m deepfake_lightning.data.shard data.root=DIR out=FOLDER (or its s3:// URL)"
        )


def require_litdata(what: str) -> None:
    """Shards are written and read by LitData, an optional dependency (the `streaming` extra)."""
    if importlib.util.find_spec("litdata") is None:
        raise ConfigError(f"{what} needs the litdata package: pip install 'deepfake_lightning[streaming]'")


def validate_sources(cfg: DictConfig) -> None:
    """`data=multi`: each source's folders and files, checked as its own data config, its errors named so."""
    from deepfake_lightning.data.multi_sources import held_out_names, source_key, source_nodes

    held_out_names(cfg.data)
    for name, node in source_nodes(cfg.data).items():
        try:
            validate_data(OmegaConf.create({"data": node}))
        except ConfigError as err:
            raise ConfigError(source_key(name, str(err))) from None


def validate_grouping(cfg: DictConfig) -> None:
    """A labels CSV that `data.labels_csv` or `data.group_by` needs must exist (its columns are read later)."""
    root = OmegaConf.select(cfg, "data.root", default=None)
    if root is None or OmegaConf.select(cfg, "data.layout") != "folder" or not Path(root).is_dir():
        return
    try:
        resolve_labels_csv(
            Path(root), OmegaConf.select(cfg, "data.labels_csv"), OmegaConf.select(cfg, "data.group_by")
        )
    except DatasetLayoutError as err:
        raise ConfigError(str(err)) from None


def validate_model(cfg: DictConfig) -> None:
    schema = schema_of(cfg, "model")
    if schema is None:
        return
    schema.check(cfg.model)
    if issubclass(schema, ModelSettings):
        validate_backbone(cfg)


def validate_backbone(cfg: DictConfig) -> None:
    """`model.backbone.name` names a model that can be built; `freeze_first_n` fits its tensor count and `tune`
    its structure (checked on the meta device: no memory, no weights)."""
    name = OmegaConf.select(cfg, "model.backbone.name", default=None) or "mobilenet_v2"
    try:
        with torch.device("meta"):
            n_tensors = backbone_tensor_count(name)
    except ValueError as err:  # unknown timm model, or one without features_only
        raise ConfigError(str(err)) from None
    check_freeze_first_n(OmegaConf.select(cfg, "model.backbone.freeze_first_n", default=0), n_tensors, name)
    tune = OmegaConf.select(cfg, "model.backbone.tune", default="all")
    if tune != "all":  # ln needs LayerNorms, last_k a block view and k in range: built without weights
        last_k = OmegaConf.select(cfg, "model.backbone.tune_last_k", default=None)
        with torch.device("meta"):
            build_backbone({"name": name, "tune": tune, "tune_last_k": last_k})


def validate_run(cfg: DictConfig) -> None:
    if OmegaConf.select(cfg, "trainer", default=None) is not None:
        TrainerSettings.check(cfg.trainer)
    ckpt = OmegaConf.select(cfg, "ckpt_path", default=None)
    if ckpt is not None and ckpt != "last" and not Path(str(ckpt)).is_file():
        raise ConfigError(f"ckpt_path={ckpt!r}: file not found; expected a .ckpt file or 'last'")
    output_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
    if output_dir is not None:
        _check_writable(Path(output_dir), "paths.output_dir")


def _check_writable(path: Path, key: str) -> None:
    """The folder `key` names exists (created if need be) and can be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{key}={str(path)!r}: cannot create it ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{key}={str(path)!r}: not writable")


def check_schema(cfg: DictConfig) -> None:
    """Types, ranges, choices and unknown keys of data, model and trainer, touching no file (a config whose
    data is on another machine can be checked here)."""
    for key in ("data", "model"):
        schema = schema_of(cfg, key)
        if schema is not None:
            schema.check(cfg[key])
    if OmegaConf.select(cfg, "trainer", default=None) is not None:
        TrainerSettings.check(cfg.trainer)


def validate_feature_cache(cfg: DictConfig) -> None:
    """`feature_cache`: its values, a recipe with a frozen part to cache, and a folder it can write."""
    node = OmegaConf.select(cfg, "feature_cache", default=None)
    if node is None:
        return
    settings = FeatureCacheSettings.check(node)
    if not settings.enabled:
        return
    tune = OmegaConf.select(cfg, "model.backbone.tune", default="all")
    if tune not in ("frozen", "last_k"):
        raise ConfigError(
            f"feature_cache.enabled=true: model.backbone.tune={tune} has no frozen part to cache; expected "
            "tune=frozen or last_k, or feature_cache.enabled=false"
        )
    fakes = OmegaConf.select(cfg, "data.fakes", default="dataset")
    if fakes != "dataset":
        raise ConfigError(
            f"feature_cache.enabled=true: data.fakes={fakes} makes new fakes every epoch, which a cache of fixed "
            "images cannot hold; expected data.fakes=dataset, or feature_cache.enabled=false (train live)"
        )
    if settings.views and OmegaConf.select(cfg, "data.augment_on", default="cpu") != "cpu":
        raise ConfigError(
            f"feature_cache.views={settings.views}: cached views are augmented on the CPU; expected "
            "data.augment_on=cpu, or feature_cache.views=0"
        )
    _check_writable(Path(settings.dir), "feature_cache.dir")


def validate_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` on the first invalid value."""
    validate_data(cfg)
    validate_model(cfg)
    validate_feature_cache(cfg)
    validate_run(cfg)
