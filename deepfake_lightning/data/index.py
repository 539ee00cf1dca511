"""List the samples of each split from a dataset layout; targets are 1 = fake everywhere."""

from __future__ import annotations

import csv
import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepfake_lightning.data.group_split import cap_per_class, grouped_split
from deepfake_lightning.data.images import is_image_file
from deepfake_lightning.data.labels_csv import read_groups, resolve_labels_csv
from deepfake_lightning.data.samples import CLASS_TARGETS, SPLITS, DatasetLayoutError, Index, Sample
from deepfake_lightning.utils.config_schema import DataSettings
from deepfake_lightning.utils.files import walk_files

log = logging.getLogger(__name__)

PUBLISHED_140K = {"train": 100_000, "valid": 20_000, "test": 20_000}
FACES140K_LAYOUT = "real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}/*.jpg"


def _walk_images(folder: Path) -> list[str]:
    return walk_files(folder, is_image_file)


def _class_folders(split_dir: Path) -> list[Sample]:
    samples: list[Sample] = []
    for name, target in CLASS_TARGETS.items():
        samples.extend((path, target) for path in _walk_images(split_dir / name))
    return samples


def _find_csv(root: Path, split: str) -> Path | None:
    """Kaggle puts train.csv two levels above real_vs_fake/real-vs-fake; accept it beside the splits too."""
    for folder in (root, root.parent.parent):
        if (folder / f"{split}.csv").is_file():
            return folder / f"{split}.csv"
    return None


def _listed_files(folder: str) -> set[str]:
    """One scandir per class folder instead of a stat per CSV row: the 140k index builds in well under 2 s."""
    found: set[str] = set()
    for name in CLASS_TARGETS:
        try:
            with os.scandir(os.path.join(folder, name)) as entries:
                found.update(entry.path for entry in entries)
        except OSError:
            continue
    return found


def _read_140k_csv(csv_path: Path, root: Path, split: str) -> list[Sample]:
    """Kaggle CSV: `label` 1 = real, 0 = fake; flipped here so that 1 = fake."""
    samples: list[Sample] = []
    missing: list[str] = []
    root_str = str(root)
    listed = _listed_files(os.path.join(root_str, split))
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        absent = {"label", "path"} - set(reader.fieldnames or [])
        if absent:
            raise DatasetLayoutError(f"{csv_path}: missing column(s) {sorted(absent)}; expected label,path")
        for row_number, row in enumerate(reader, start=2):
            label = row["label"].strip()
            if label not in ("0", "1"):
                raise DatasetLayoutError(
                    f"{csv_path}:{row_number}: label={row['label']!r}; expected 1 (real) or 0 (fake)"
                )
            target = 1 - int(label)
            label_str = (row.get("label_str") or "").strip().lower()
            if label_str and CLASS_TARGETS.get(label_str, -1) != target:
                raise DatasetLayoutError(
                    f"{csv_path}:{row_number}: label={row['label']} contradicts label_str={label_str!r}"
                )
            path = os.path.join(root_str, row["path"])
            if path in listed or os.path.isfile(path):
                samples.append((path, target))
            else:
                missing.append(row["path"])
    if missing:
        log.warning("skipped %d rows of %s whose file is missing: %s", len(missing), csv_path, missing[:10])
    return samples


def index_faces140k(root: str | Path) -> Index:
    """The 140k Real and Fake Faces layout: CSVs when present, else the class folders."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(
            f"data.root={root} does not exist; expected the folder holding {{train,valid,test}}/{{real,fake}} "
            f"(Kaggle layout: {FACES140K_LAYOUT}). Download the dataset there or set data.root=..."
        )
    index: Index = {}
    for split in SPLITS:
        csv_path = _find_csv(root, split)
        if csv_path is not None:
            index[split] = _read_140k_csv(csv_path, root, split)
        elif (root / split).is_dir():
            index[split] = _class_folders(root / split)
        else:
            raise DatasetLayoutError(f"{root}: split folder '{split}/' and {split}.csv are both missing")
    for split, expected in PUBLISHED_140K.items():
        if len(index[split]) != expected:
            log.warning(
                "faces140k %s split has %d images; the published split has %d",
                split,
                len(index[split]),
                expected,
            )
    return index


def _check_ratios(ratios: Sequence[float]) -> None:
    DataSettings.check_value("split_ratios", ratios)


def stratified_split(samples: Sequence[Sample], ratios: Sequence[float], seed: int) -> Index:
    """Seeded split of each class by `ratios` (train, valid, test) so class balance is kept per split."""
    _check_ratios(ratios)
    index: Index = {split: [] for split in SPLITS}
    rng = random.Random(seed)
    for target in sorted(CLASS_TARGETS.values()):
        members = sorted(s for s in samples if s[1] == target)
        rng.shuffle(members)
        n_train = round(ratios[0] * len(members))
        n_valid = round(ratios[1] * len(members))
        index["train"] += members[:n_train]
        index["valid"] += members[n_train : n_train + n_valid]
        index["test"] += members[n_train + n_valid :]
    return index


def index_folder(root: str | Path, *args: Any, **kwargs: Any) -> Index:
    """`root/{train,valid,test}/{real,fake}/**` as given, or `root/{real,fake}/**` split by seeded ratios.

    The arguments of `index_folder_with_groups`, for callers that need only the index."""
    return index_folder_with_groups(root, *args, **kwargs)[0]


def index_folder_with_groups(
    root: str | Path,
    split_ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    use_all_for_test: bool = False,
    labels_csv: str | None = None,
    group_by: str | None = None,
    max_per_class: int | None = None,
) -> tuple[Index, dict[str, str]]:
    """The index and each file's group (path -> value of the CSV's `group_by` column; empty without one).

    With `group_by`, a ratio split keeps every group in one split; given train/valid/test folders are kept as
    they are (the leakage check reports groups they share). `max_per_class` caps a ratio-split folder before
    it is split, in whole groups."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(
            f"data.root={root} does not exist; expected root/{{real,fake}}/** or root/{{train,valid,test}}/{{real,fake}}"
        )
    given = all((root / split).is_dir() for split in SPLITS)
    if given:
        if max_per_class is not None:
            raise DatasetLayoutError(
                f"data.max_per_class={max_per_class}: caps root/{{real,fake}} folders before they are split; "
                f"data.root={root} has given train/ valid/ test/ splits"
            )
        index = {split: _class_folders(root / split) for split in SPLITS}
        samples = [s for split in SPLITS for s in index[split]]
    else:
        _require_class_folders(root)
        samples = _class_folders(root)
    csv_path = resolve_labels_csv(root, labels_csv, group_by)
    asked = bool(labels_csv or group_by)
    by_file = not (given or use_all_for_test or group_by)
    groups = read_groups(csv_path, root, samples, group_by, asked, by_file) if csv_path is not None else {}
    if given:
        if use_all_for_test:
            index = {"train": [], "valid": [], "test": samples}
        return index, groups
    if max_per_class is not None:
        samples = cap_per_class(samples, groups, max_per_class, seed)
    if use_all_for_test:
        return {"train": [], "valid": [], "test": samples}, groups
    if group_by:
        _check_ratios(split_ratios)
        return grouped_split(samples, groups, split_ratios, seed), groups
    return stratified_split(samples, split_ratios, seed), groups


def _require_class_folders(root: Path) -> None:
    if any((root / name).is_dir() for name in CLASS_TARGETS):
        return
    present = [split for split in SPLITS if (root / split).is_dir()]
    if present:
        missing = [split for split in SPLITS if split not in present]
        raise DatasetLayoutError(
            f"data.root={root} has {' '.join(s + '/' for s in present)} but no "
            f"{' '.join(s + '/' for s in missing)}: expected all of train/ valid/ test/ (each with real/ fake/), "
            "or root/{real,fake}/** split by data.split_ratios"
        )
    raise DatasetLayoutError(f"data.root={root} has neither real/ and fake/ nor train/ valid/ test/ folders")


def describe(index: Index) -> dict[str, dict[str, int]]:
    """Counts per split and class, for logs and run files."""
    return {
        split: {name: sum(1 for _, t in samples if t == target) for name, target in CLASS_TARGETS.items()}
        for split, samples in index.items()
    }
