"""The data node of each source of `data=multi`: the shared settings, then the source's own keys.

A source is the data module it would be alone: a ``data=folder`` node (``layout: folder``, DeepfakeDataModule)
with the same keys, or any data node with its own ``_target_`` (the training data a model bundle records). The
keys of the multi node other than ``sources``, ``mix``, ``epoch_size`` and ``held_out`` apply to every source;
a source may override any of them (``reencode_jpeg_quality``, ``group_by``, ``augment.jpeg.enabled``...) except
those that must be one value for the run: the network input and the loader (`SHARED_ONLY`). Pure functions of
the config (no file is read), so the start-up check and the data module compose a source the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from deepfake_lightning.utils.config_schema import ConfigError, DataSettings, import_target, plain

MULTI_KEYS = ("sources", "mix", "epoch_size", "held_out")
# one network sees every source (size, crop, normalisation); one loader serves them; leakage is checked once
# over all sources together (a file shared by two sources is a leak too)
SHARED_ONLY = (
    "image_size",
    "preprocess",
    "normalize",
    "batch_size",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
    "augment_on",
    "channels_last",
    "check_leakage",
)
FOLDER_NODE = {"_target_": "deepfake_lightning.data.DeepfakeDataModule", "layout": "folder"}


def source_key(name: str, message: str) -> str:
    """A source's own error line names it: ``data.group_by=...`` -> ``data.sources.NAME.group_by=...``."""
    return f"data.sources.{name}.{message[5:]}" if message.startswith("data.") else message


def shared_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a multi data node that every source inherits (not `_target_`, not the multi keys)."""
    return {k: v for k, v in plain(data).items() if k not in MULTI_KEYS and not k.startswith("_")}


def source_node(name: str, own: Mapping[str, Any] | None, shared: Mapping[str, Any]) -> dict[str, Any]:
    """Folder defaults (unless the source names its own ``_target_``), the shared settings, its own keys."""
    own = plain(own) if own is not None else None
    if hasattr(own, "setup"):  # a data module already: Hydra instantiated the source's own _target_
        raise ConfigError(
            f"data.sources.{name}: built by Hydra before the multi-source module could add the shared keys; "
            "set data._recursive_=false (conf/data/multi.yaml does)"
        )
    if not isinstance(own, Mapping):
        raise ConfigError(f"data.sources.{name}={own!r}: expected a mapping such as {{root: DIR}}")
    if "sources" in own:
        raise ConfigError(
            f"data.sources.{name}.sources: a source cannot itself hold sources; list them all in data.sources"
        )
    fixed = [key for key in own if key in SHARED_ONLY]
    if fixed:
        raise ConfigError(
            f"data.sources.{name}.{fixed[0]}={own[fixed[0]]!r}: one value for every source (one network input, "
            f"one loader); set data.{fixed[0]} instead"
        )
    if "root" in shared:
        raise ConfigError(
            f"data.root={shared['root']!r}: a multi-source data config has one root per source "
            "(data.sources.NAME.root)"
        )
    base = {} if "_target_" in own else dict(FOLDER_NODE)
    merged = OmegaConf.merge(base, dict(shared), dict(own))  # nested keys (augment.*) merge, not replace
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def source_nodes(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every source's full data node, in the order the config lists them."""
    data = plain(data)
    sources = data.get("sources")
    if not isinstance(sources, Mapping) or not sources:
        raise ConfigError(
            f"data.sources={sources!r}: expected at least one source, e.g. "
            "data.sources={dfdc:{root:DIR,group_by:source_video},lfw:{root:DIR2}}"
        )
    shared = shared_settings(data)
    return {str(name): source_node(str(name), own, shared) for name, own in sources.items()}


def held_out_names(data: Mapping[str, Any]) -> list[str]:
    """``held_out``: null, one source name or a list of them; each must be a source."""
    data = plain(data)
    value = data.get("held_out")
    names = [] if value is None else [value] if isinstance(value, str) else list(value)
    known = list(data.get("sources") or {})
    if value == "???":  # an experiment that leaves the choice to the command line (+experiment=lodo)
        raise ConfigError(f"data.held_out: missing; expected the source(s) to leave out, among {known}")
    for name in names:
        if name not in known:
            raise ConfigError(
                f"data.held_out={value!r}: {name!r} is not a source; expected names among {known}"
            )
    if known and set(known) <= set(names):
        raise ConfigError(f"data.held_out={value!r}: holds out every source, so nothing is left to train on")
    return names


def check_sources(data: Mapping[str, Any]) -> None:
    """``held_out`` and every source node against its own data schema (`DataSettings` for a folder source),
    errors named ``data.sources.NAME.key``; no file is read (start-up checks the folders: `validate_sources`)."""
    held_out_names(data)
    for name, node in source_nodes(data).items():
        schema = getattr(import_target(str(node["_target_"])), "config_schema", DataSettings)
        try:
            schema.check(node)
        except ConfigError as err:
            raise ConfigError(source_key(name, str(err))) from None
