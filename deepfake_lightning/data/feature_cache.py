"""On-disk store of frozen encoder outputs: one entry per image content, in a folder per key.

The folder is named by the SHA-256 of a key holding everything an entry depends on besides the image: the encoder
(architecture, the SHA-256 of the frozen part's tensors, where it is cut, torch and timm versions), the
preprocessing (image size, resize or crop, normalisation, JPEG re-encoding) and, for augmented views, the
augmentation settings and their seed. Entries are named by the image file's SHA-256 (plus `:view`), so a renamed
or copied file is a hit and an edited one a miss. Changing anything in the key opens another folder: nothing stale
is ever read. `meta.json` in each folder holds its key in plain JSON.

Entries are written in shards (`<uuid>.npy` with the values, then `<uuid>.json` with the entry names) through
temporary files and renames; a shard counts only once its `.json` exists, so an interrupted build keeps the shards
it finished and never leaves a half-written one readable. Concurrent writers (DDP ranks, two runs) write different
shards; an entry written twice holds the same values. Reads are memory-mapped: a split's features need not fit
in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
FORMAT = 1  # bump when the layout or the meaning of an entry changes


def key_digest(key: Mapping[str, Any]) -> str:
    """SHA-256 of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_npy(path: Path, values: np.ndarray) -> None:
    with path.open("wb") as handle:  # a handle: np.save would append ".npy" to a temporary name
        np.save(handle, np.ascontiguousarray(values))


class FeatureStore:
    """The entries of one key under `root/<first 24 hex digits of its digest>/`."""

    def __init__(self, root: str | Path, key: Mapping[str, Any]) -> None:
        self.key = {"format": FORMAT, **key}
        self.digest = key_digest(self.key)
        self.dir = Path(root) / self.digest[:24]
        self._entries: dict[str, tuple[int, int]] = {}  # entry -> (shard number, row)
        self._arrays: list[np.ndarray] = []
        self._shards: set[str] = set()
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.is_file():
            _write_atomic(
                meta, lambda p: p.write_text(json.dumps(self.key, indent=2, sort_keys=True, default=str))
            )
        self.refresh()

    @classmethod
    def open(cls, folder: str | Path) -> FeatureStore:
        """The store of an existing folder (its key read back from `meta.json`)."""
        folder = Path(folder)
        try:
            key = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"{folder}: not a feature cache folder (no readable meta.json: {err})"
            ) from None
        store = cls(folder.parent, {k: v for k, v in key.items() if k != "format"})
        if store.dir != folder:
            raise ValueError(
                f"{folder}: meta.json does not match the folder name (format {key.get('format')})"
            )
        return store

    def refresh(self) -> None:
        """Read the shards written since the last look (by this or another process)."""
        for names_file in sorted(self.dir.glob("*.json")):
            shard = names_file.stem
            if shard == "meta" or shard in self._shards:
                continue
            try:
                names = json.loads(names_file.read_text())
                values = np.load(self.dir / f"{shard}.npy", mmap_mode="r")
                if not isinstance(names, list) or len(names) != len(values):
                    raise ValueError(f"{len(names)} names for {len(values)} rows")
                if self._arrays and values.shape[1:] != self._arrays[0].shape[1:]:
                    raise ValueError(f"entry shape {values.shape[1:]} != {self._arrays[0].shape[1:]}")
            except (OSError, ValueError) as err:  # a damaged shard: its entries are computed again
                log.warning("feature cache: ignored shard %s (%s)", self.dir / shard, err)
                self._shards.add(shard)
                continue
            self._shards.add(shard)
            number = len(self._arrays)
            self._arrays.append(values)
            for row, name in enumerate(names):
                self._entries.setdefault(str(name), (number, row))

    def __contains__(self, entry: str) -> bool:
        return entry in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def missing(self, entries: Iterable[str]) -> list[str]:
        """Entries not stored yet, in order, without repeats."""
        return [e for e in dict.fromkeys(entries) if e not in self._entries]

    def add(self, entries: Sequence[str], values: np.ndarray) -> None:
        """Store one shard: `values[i]` is entry `entries[i]`."""
        if len(entries) != len(values):
            raise ValueError(f"{len(entries)} entries for {len(values)} rows")
        shard = uuid.uuid4().hex
        _write_atomic(self.dir / f"{shard}.npy", lambda p: _save_npy(p, values))
        _write_atomic(self.dir / f"{shard}.json", lambda p: p.write_text(json.dumps(list(entries))))
        self.refresh()

    def get(self, entry: str) -> np.ndarray:
        """The stored values of `entry` (a copy, safe to hand to torch)."""
        number, row = self._entries[entry]
        return np.array(self._arrays[number][row])

    def entry_shape(self) -> tuple[int, ...] | None:
        return tuple(self._arrays[0].shape[1:]) if self._arrays else None
