"""The data of an update: the new set's sources and the old training data's, one `data=multi` node.

The old training data is replayed as the model bundle records it, so every old source keeps its own split:
its training images are replayed, and its test split is the one the detector was first tested on. That keeps
"before" and "after" on the same images. ``replay_fraction`` is the old sources' share of every training epoch
(`source_mix.py`). At 0 the old sources are held out and serve only their test split, so forgetting is still
measured. The network input (size, crop, normalisation, the recorded re-encoding, the face pipeline) is the
checkpoint's. Everything else shared (the loader) comes from the new data's config; every source keeps its own
keys (a re-encoding quality, augmentation), the old ones as recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepfake_lightning.data.face_crops import data_face_crop
from deepfake_lightning.data.multi_sources import SHARED_ONLY, held_out_names, shared_settings, source_nodes
from deepfake_lightning.utils.config_schema import plain

MULTI_TARGET = "deepfake_lightning.data.MultiSourceDataModule"
# what the network was trained to see (the model records them as its preprocessing); each source may still
# re-encode at its own quality, as it did when it was trained on
INPUT_KEYS = ("image_size", "preprocess", "normalize", "reencode_jpeg_quality")


def is_multi(node: Mapping[str, Any]) -> bool:
    return "sources" in node


def dataset_name(node: Mapping[str, Any]) -> str:
    """A single data node's name as a source: its folder's name (``dfdc_faces``), else its module's."""
    root = node.get("root") or node.get("out_dir")
    if root:
        return Path(str(root)).name
    return str(node.get("_target_", "data")).rsplit(".", 1)[-1]


def as_sources(node: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: source node}`` of a data node: a multi node's full sources (not those it held out: it never
    trained on them), or the single node itself, less the keys that a source may not set (`SHARED_ONLY`)."""
    node = plain(node)
    if is_multi(node):
        held_out = held_out_names(node)
        sources = {name: own for name, own in source_nodes(node).items() if name not in held_out}
    else:
        sources = {dataset_name(node): dict(node)}
    return {name: {k: v for k, v in own.items() if k not in SHARED_ONLY} for name, own in sources.items()}


def face_crop_setting(new: Mapping[str, Any], preprocessing: Mapping[str, Any]) -> dict[str, Any]:
    """The update's ``data.face_crop``: the face pipeline the checkpoint records (as eval applies it) over the new
    data's own keys (``on_no_face``, ``cache_dir``); the new data's own when the model cut no faces itself (none,
    or crops `prepare` made ahead, which are read as they are)."""
    own = dict(new.get("face_crop") or {"enabled": False})
    record = data_face_crop(preprocessing.get("face_crop"))
    return {**own, **record} if record else own


def update_data(
    new: Mapping[str, Any], old: Mapping[str, Any], replay_fraction: float, preprocessing: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the multi node, the new sources' names, the old sources' names). An old source named like a new one
    is renamed ``<name>_old``."""
    new, old = plain(new), plain(old)
    new_sources, old_sources = as_sources(new), as_sources(old)
    renamed = {(f"{name}_old" if name in new_sources else name): node for name, node in old_sources.items()}
    shared = shared_settings(new) if is_multi(new) else {k: v for k, v in new.items() if k in SHARED_ONLY}
    shared.update({k: preprocessing.get(k, new.get(k)) for k in INPUT_KEYS})
    shared["face_crop"] = face_crop_setting(new, preprocessing)
    held_out = held_out_names(new) if is_multi(new) else []
    trained_new = [name for name in new_sources if name not in held_out]
    node: dict[str, Any] = {
        **shared,
        "_target_": MULTI_TARGET,
        "_recursive_": False,  # sources with a _target_ are built by the module (conf/data/multi.yaml)
        "sources": {**new_sources, **renamed},
        "epoch_size": None,
    }
    if replay_fraction > 0:
        node["mix"] = {"+".join(trained_new): 1 - replay_fraction, "+".join(renamed): replay_fraction}
    else:
        node["mix"] = "concat"
        held_out = [*held_out, *renamed]
    if held_out:
        node["held_out"] = held_out
    return node, list(new_sources), list(renamed)
