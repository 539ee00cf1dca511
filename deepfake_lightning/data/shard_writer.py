"""Write an indexed data set as LitData-optimized shards (`litdata.optimize`), in the layout of shard_format.py."""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lightning.data.index import SPLITS, DatasetLayoutError, Index, describe
from deepfake_lightning.data.shard_format import FORMAT, MANIFEST_NAME, META_NAME, is_remote
from deepfake_lightning.data.split_manifest import write_split_manifest

log = logging.getLogger(__name__)

# (id, file to read, path stored, label, group)
Record = tuple[int, str, str, int, str]


def read_record(records: Sequence[Record], position: int) -> dict[str, Any]:
    """One sample as stored: the file's bytes, undecoded. Runs in the optimize workers."""
    sample_id, source, path, label, group = records[position]
    with open(source, "rb") as handle:
        image = handle.read()
    return {"id": sample_id, "path": path, "label": label, "group": group, "image": image}


def _start_method() -> str | None:
    """fork where the platform has it: each spawned optimize worker imports torch again, 53 s for a 50-file set
    on this machine's shared cores against 1.6 s forked (the workers only read files, no torch state is used)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else None


def _relative(index: Index, groups: Mapping[str, str], root: Path) -> tuple[Index, dict[str, str]]:
    """Paths relative to the data root, so shards move between machines and buckets; a file outside the root
    (a splits.csv from elsewhere) is refused, named."""
    relative: Index = {}
    relative_groups: dict[str, str] = {}
    for split, samples in index.items():
        relative[split] = []
        for path, target in samples:
            rel = os.path.relpath(path, root)
            if rel.startswith(os.pardir) or os.path.isabs(rel):
                raise DatasetLayoutError(f"{path}: outside data.root={root}; every file must lie under it")
            relative[split].append((Path(rel).as_posix(), target))
            if path in groups:
                relative_groups[Path(rel).as_posix()] = groups[path]
    return relative, relative_groups


def _require_readable(index: Index) -> None:
    """Every file readable before any worker starts: a worker's failure would surface as a traceback."""
    unreadable = [path for samples in index.values() for path, _ in samples if not os.access(path, os.R_OK)]
    if unreadable:
        raise DatasetLayoutError(f"{len(unreadable)} file(s) cannot be read: {unreadable[:10]}")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Replace only shards this command wrote (a folder holding shards.json), and only when asked."""
    if is_remote(out):
        raise DatasetLayoutError(
            f"out={out}: write the shards to a local folder, then copy it to the bucket (aws s3 sync OUT {out}); "
            "data.uri streams it from there"
        )
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    if not (out / META_NAME).is_file():
        raise DatasetLayoutError(
            f"out={out}: folder is not empty and holds no shards ({META_NAME}); pick another"
        )
    if not overwrite:
        raise DatasetLayoutError(
            f"out={out}: already holds shards ({META_NAME}); pass overwrite=true to replace"
        )
    (out / META_NAME).unlink()
    for split in SPLITS:
        shutil.rmtree(out / split, ignore_errors=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)


def write_shards(
    index: Index,
    groups: Mapping[str, str],
    root: str | Path,
    out: str | Path,
    chunk_bytes: int | str = "64MB",
    num_workers: int = 2,
    shuffle_seed: int = 0,
    overwrite: bool = False,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Shard every non-empty split of `index` (absolute paths) under `out`; returns what shards.json holds.

    The training split is written in a seeded random order: the index lists a class at a time, and a streamed
    batch comes from one or two chunks, so chunks written in index order would give batches of one class."""
    from litdata import optimize

    out = Path(out)
    _prepare_out(out, overwrite)
    _require_readable(index)
    relative, relative_groups = _relative(index, groups, Path(root))
    order = {split: np.arange(len(samples)) for split, samples in index.items()}
    order["train"] = np.random.default_rng(shuffle_seed).permutation(len(index.get("train", [])))
    shard_index: Index = {}
    for split in SPLITS:
        samples, rel = index.get(split, []), relative.get(split, [])
        shard_index[split] = [rel[k] for k in order[split]] if samples else []
        if not samples:
            continue
        records: list[Record] = [
            (position, samples[k][0], rel[k][0], int(rel[k][1]), relative_groups.get(rel[k][0], ""))
            for position, k in enumerate(order[split].tolist())
        ]
        log.info("shard %s: %d images -> %s", split, len(records), out / split)
        optimize(
            functools.partial(read_record, records),
            list(range(len(records))),
            output_dir=str(out / split),
            chunk_bytes=chunk_bytes,
            num_workers=min(num_workers, len(records)),
            keep_data_ordered=True,  # sample k of the shards is row k of the split in splits.csv
            reorder_files=False,
            start_method=_start_method(),
            verbose=False,
        )
    write_split_manifest(out / MANIFEST_NAME, shard_index, relative_groups)
    meta = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "litdata": metadata.version("litdata"),
        "source": {"root": str(root), **(source or {})},
        "counts": describe(shard_index),
        "train_order_seed": shuffle_seed,
        "chunk_bytes": chunk_bytes,
    }
    (out / META_NAME).write_text(json.dumps(meta, indent=2, default=str))
    return meta
