"""The optional labels CSV of a folder dataset: a second witness for each file's class, and its group.

The folder (`real/` or `fake/`) always gives the label; the CSV may only agree with it. Its `group_by` column
names what files share (a source video, a person): files of one group must never sit in two splits, or a
detector is scored on near-copies of what it trained on. So when grouping is asked for, every file on disk
must have a group: an unlisted file or an empty value stops the run instead of being split by file.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from deepfake_lightning.data.samples import DatasetLayoutError, Sample

log = logging.getLogger(__name__)

DEFAULT_NAME = "labels.csv"
FILE_COLUMN = "file"
LABEL_COLUMN = "label"
SHOWN = 5  # files named in a message; the count covers all of them
LABEL_VALUES = {"real": 0, "fake": 1, "0": 0, "1": 1}  # 1 = fake, as everywhere in this project

Groups = dict[str, str]  # sample path -> group value


class NoFileColumn(DatasetLayoutError):
    """The CSV has no `file` column: it is not a labels CSV of this folder."""


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return f"{shown}, ..." if len(items) > SHOWN else shown


def resolve_labels_csv(
    root: Path, labels_csv: str | None, group_by: str | None, key: str = "data.group_by"
) -> Path | None:
    """`labels_csv` (absolute or relative to root) must exist; unset, `root/labels.csv` is used when present.
    `group_by` is a column some setting (`key`) needs: then a missing CSV is an error."""
    if labels_csv:
        path = Path(labels_csv)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DatasetLayoutError(
                f"data.labels_csv={labels_csv!r}: file not found ({path}); expected a CSV with a "
                f"'{FILE_COLUMN}' column relative to data.root"
            )
        return path
    default = root / DEFAULT_NAME
    if default.is_file():
        return default
    if group_by:
        raise DatasetLayoutError(
            f"{key}={group_by!r} needs a labels CSV: {default} not found; set data.labels_csv=FILE "
            f"(columns {FILE_COLUMN},{group_by}[,{LABEL_COLUMN}])"
        )
    return None


def _relative(path: str, root: str) -> str:
    prefix = root.rstrip(os.sep) + os.sep
    rel = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root)
    return os.path.normpath(rel).replace(os.sep, "/")


def _read_rows(
    csv_path: Path, group_by: str | None, key: str = "data.group_by"
) -> tuple[list[str], dict[str, dict[str, str]]]:
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        if FILE_COLUMN not in columns:
            raise NoFileColumn(
                f"{csv_path}: no '{FILE_COLUMN}' column (columns: {', '.join(columns) or 'none'}); "
                f"expected {FILE_COLUMN} = image path relative to data.root"
            )
        if group_by and group_by not in columns:
            raise DatasetLayoutError(
                f"{key}={group_by!r}: no such column in {csv_path}; available: {', '.join(columns)}"
            )
        rows: dict[str, dict[str, str]] = {}
        repeated: list[str] = []
        for row in reader:
            rel = os.path.normpath((row.get(FILE_COLUMN) or "").strip()).replace(os.sep, "/")
            if rel in rows:
                repeated.append(rel)
            rows[rel] = row
    if repeated:
        raise DatasetLayoutError(f"{csv_path}: {len(repeated)} file(s) listed twice: {_few(repeated)}")
    return columns, rows


def _check_labels(csv_path: Path, rows: dict[str, dict[str, str]], targets: dict[str, int]) -> None:
    """The folder is the truth; a CSV label that disagrees means the CSV or the folders are wrong."""
    wrong: list[str] = []
    for rel, target in targets.items():
        value = (rows[rel].get(LABEL_COLUMN) or "").strip().lower()
        if value and LABEL_VALUES.get(value) != target:
            wrong.append(f"{rel} ({LABEL_COLUMN}={value!r})")
    if wrong:
        raise DatasetLayoutError(
            f"{csv_path}: {len(wrong)} file(s) whose {LABEL_COLUMN} contradicts their folder: {_few(wrong)}; "
            "expected real/0 under real/, fake/1 under fake/"
        )


def _shared_value_columns(columns: list[str], rows: dict[str, dict[str, str]]) -> list[str]:
    """Columns (besides file and label) whose values repeat across files: likely groups."""
    found = []
    for column in columns:
        if column in (FILE_COLUMN, LABEL_COLUMN):
            continue
        counts = Counter(v for row in rows.values() if (v := (row.get(column) or "").strip()))
        if counts and counts.most_common(1)[0][1] > 1:
            found.append(column)
    return found


def read_groups(
    csv_path: Path,
    root: str | Path,
    samples: Sequence[Sample],
    group_by: str | None,
    asked: bool = True,
    split_by_file: bool = False,
) -> Groups:
    """Check the CSV against the files on disk; returns path -> group (empty when `group_by` is None).

    `asked=False` (a `root/labels.csv` found, not configured): one without a `file` column is some other
    table, ignored with a warning rather than stopping a run that never asked for it. `split_by_file`: the
    caller is about to split by file, so columns that look like groups are pointed out."""
    root_str = str(root)
    by_rel = {_relative(path, root_str): (path, target) for path, target in samples}
    try:
        columns, rows = _read_rows(csv_path, group_by)
    except NoFileColumn as err:
        if asked:
            raise
        log.warning("ignored %s", err)
        return {}
    absent = sorted(set(rows) - set(by_rel))
    if absent:
        raise DatasetLayoutError(
            f"{csv_path} lists {len(absent)} file(s) that are not images in the class folders "
            f"(real/, fake/) under {root_str}: {_few(absent)}"
        )
    listed = {rel: target for rel, (_, target) in by_rel.items() if rel in rows}
    if LABEL_COLUMN in columns:
        _check_labels(csv_path, rows, listed)
    unlisted = sorted(set(by_rel) - set(rows))
    if not group_by:
        if unlisted:
            log.warning(
                "%d image(s) under %s are not in %s: %s", len(unlisted), root_str, csv_path, _few(unlisted)
            )
        likely = _shared_value_columns(columns, rows) if split_by_file else []
        if likely:
            log.warning(
                "data: %s is split by file, but column(s) %s of %s repeat across files; if files share a "
                "source (a video, a person), set data.group_by=COLUMN so no source sits in two splits",
                root_str,
                likely,
                csv_path,
            )
        return {}
    if unlisted:
        raise DatasetLayoutError(
            f"data.group_by={group_by!r}: {len(unlisted)} image(s) under {root_str} are not in {csv_path}, so "
            f"they have no group: {_few(unlisted)}"
        )
    empty = sorted(rel for rel in by_rel if not (rows[rel].get(group_by) or "").strip())
    if empty:
        raise DatasetLayoutError(
            f"data.group_by={group_by!r}: {len(empty)} file(s) in {csv_path} have an empty {group_by}: "
            f"{_few(empty)}"
        )
    return {path: rows[rel][group_by].strip() for rel, (path, _) in by_rel.items()}


def read_column(csv_path: Path, root: str | Path, paths: Sequence[str], column: str, key: str) -> list[str]:
    """The value of `column` for each of `paths` (as the loaders opened them), in order.

    The files themselves were checked against the CSV when the index was built (`read_groups`); here a path
    the CSV does not list, or an empty value, is an error naming `key`, the setting that asked for the column:
    a frame without its video would otherwise be scored as a video of its own."""
    _, rows = _read_rows(csv_path, column, key)
    root_str = str(root)
    values, unlisted, empty = [], [], []
    for path in paths:
        rel = _relative(path, root_str)
        row = rows.get(rel)
        value = (row.get(column) or "").strip() if row is not None else ""
        if row is None:
            unlisted.append(rel)
        elif not value:
            empty.append(rel)
        values.append(value)
    if unlisted:
        raise DatasetLayoutError(
            f"{key}={column!r}: {len(unlisted)} file(s) under {root_str} are not in {csv_path}: {_few(unlisted)}"
        )
    if empty:
        raise DatasetLayoutError(
            f"{key}={column!r}: {len(empty)} file(s) in {csv_path} have an empty {column}: {_few(empty)}"
        )
    return values
