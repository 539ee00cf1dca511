"""`splits.csv`: which file was in which split, so a result can be audited and its split rebuilt exactly.

Columns `path, split, label, group`: the path as the loaders opened it (the same as in `predictions.csv`),
label 1 = fake, group empty when the split was not grouped. Rows follow the index order, so reading the file
back gives the same index, order included, whatever scikit-learn or seed logic made it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from deepfake_lightning.data.index import SPLITS, DatasetLayoutError, Index

COLUMNS = ("path", "split", "label", "group")


def write_split_manifest(path: str | Path, index: Index, groups: Mapping[str, str]) -> Path:
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for split in SPLITS:
            for sample_path, target in index.get(split, []):
                writer.writerow((sample_path, split, int(target), groups.get(sample_path, "")))
    return path


def read_split_manifest(path: str | Path) -> tuple[Index, dict[str, str]]:
    """The index and the groups (non-empty only) written by `write_split_manifest`."""
    index: Index = {split: [] for split in SPLITS}
    groups: dict[str, str] = {}
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DatasetLayoutError(f"{path}: columns {reader.fieldnames}; expected {','.join(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            if row["split"] not in index or row["label"] not in ("0", "1"):
                raise DatasetLayoutError(
                    f"{path}:{line}: split={row['split']!r} label={row['label']!r}; expected a split in "
                    f"{SPLITS} and label 0 (real) or 1 (fake)"
                )
            index[row["split"]].append((row["path"], int(row["label"])))
            if row["group"]:
                groups[row["path"]] = row["group"]
    return index, groups
