"""`splits.csv`: which file was in which split, so a result can be audited and its split rebuilt exactly.

Columns `path, split, label, group`: the path as the loaders opened it (the same as in `predictions.csv`),
label 1 = fake, group empty when the split was not grouped; then any per-image columns the data module carries
(`source` under `data=multi`). Rows follow the index order, so reading the file back gives the same index, order
included, whatever scikit-learn or seed logic made it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from deepfake_lightning.data.index import SPLITS, DatasetLayoutError, Index

COLUMNS = ("path", "split", "label", "group")


def write_split_manifest(
    path: str | Path,
    index: Index,
    groups: Mapping[str, str],
    columns: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """`columns`: extra columns, each ``{path: value}`` (empty where a path has none)."""
    path = Path(path)
    columns = dict(columns or {})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow((*COLUMNS, *columns))
        for split in SPLITS:
            for sample_path, target in index.get(split, []):
                extra = (values.get(sample_path, "") for values in columns.values())
                writer.writerow((sample_path, split, int(target), groups.get(sample_path, ""), *extra))
    return path


def read_split_manifest(path: str | Path) -> tuple[Index, dict[str, str]]:
    """The index and the groups (non-empty only) written by `write_split_manifest` (extra columns ignored)."""
    index: Index = {split: [] for split in SPLITS}
    groups: dict[str, str] = {}
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ())[: len(COLUMNS)] != COLUMNS:
            raise DatasetLayoutError(
                f"{path}: columns {reader.fieldnames}; expected {','.join(COLUMNS)} first"
            )
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
