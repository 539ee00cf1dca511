"""The shard folder that `python -m deepfake_lightning.data.shard` writes and `data=streaming` reads.

    OUT/train/ valid/ test/   LitData-optimized chunks (index.json + chunk-*.bin), one folder per non-empty split
    OUT/splits.csv            path, split, label, group of every sample in shard order (split_manifest.py's format)
    OUT/shards.json           the format, the source, the counts per split and class: written last, so its
                              presence means the folder is complete

A sample is ``{"id": its position in its split, "path": the file's path relative to data.root, "label": 1 = fake,
"group": "" or its group, "image": the file's bytes as they were on disk}``. The image stays encoded (the JPEG as
it came): decoding, its bounds and every transform stay the project's own (images.py, transforms.py), and a
shard is no bigger than the files it holds.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_lightning.data.index import DatasetLayoutError, Index
from deepfake_lightning.data.split_manifest import read_split_manifest

FORMAT = "deepfake_lightning.shards/1"
META_NAME = "shards.json"
MANIFEST_NAME = "splits.csv"
FIELDS = ("id", "path", "label", "group", "image")


def is_remote(uri: str | Path) -> bool:
    """An object-store URL (s3://, gs://, ...) rather than a local folder."""
    return "://" in str(uri)


def split_uri(uri: str | Path, split: str) -> str:
    """Where the chunks of one split live."""
    return f"{str(uri).rstrip('/')}/{split}"


@dataclass
class ShardSet:
    """What a shard folder holds, from its two small files (no chunk is read)."""

    uri: str
    meta: dict[str, Any]
    index: Index  # split -> [(path relative to the source root, label)], in shard order
    groups: dict[str, str] = field(default_factory=dict)


def _local_copy(uri: str, name: str, cache_dir: str | Path | None) -> Path:
    """`name` from the shard folder: the file itself for a local folder, a downloaded copy for a URL."""
    if not is_remote(uri):
        return Path(uri) / name
    from litdata.streaming.fs_provider import _get_fs_provider  # the object stores LitData streams from

    folder = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="dfl_shards_"))
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / name
    remote = f"{uri.rstrip('/')}/{name}"
    try:
        _get_fs_provider(remote).download_file(remote, str(local))
    except Exception as err:  # botocore, google and azure clients each raise their own types
        raise DatasetLayoutError(
            f"data.uri={uri}: cannot read {remote} ({err.__class__.__name__}: {err})"
        ) from err
    return local


def open_shard_set(uri: str | Path, cache_dir: str | Path | None = None) -> ShardSet:
    """The metadata and split of the shards at `uri`; a folder that is not one is refused with its reason."""
    uri = str(uri)
    meta_path = _local_copy(uri, META_NAME, cache_dir)
    if not meta_path.is_file():
        raise DatasetLayoutError(
            f"data.uri={uri}: no {META_NAME}; expected a folder written by python -m deepfake_lightning.data.shard "
            f"(train/ valid/ test/, {MANIFEST_NAME}, {META_NAME})"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise DatasetLayoutError(
            f"data.uri={uri}: {META_NAME} says format {meta.get('format')!r}; this version reads {FORMAT!r}"
        )
    index, groups = read_split_manifest(_local_copy(uri, MANIFEST_NAME, cache_dir))
    return ShardSet(uri, meta, index, groups)
