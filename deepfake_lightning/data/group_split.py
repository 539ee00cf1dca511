"""Seeded, stratified, grouped train/valid/test splits: no group has members in two splits.

scikit-learn's `StratifiedGroupKFold` deals the groups into K folds of near-equal size and class balance; the
folds are then handed out to train/valid/test in proportion to `data.split_ratios`. With K = 20 a ratio is met to
within 1/20 of the groups (0.8/0.1/0.1 -> 16/2/2 folds, exactly); fewer groups give coarser steps.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from deepfake_lightning.data.samples import SPLITS, DatasetLayoutError, Index, Sample

MAX_FOLDS = 20


def _folds_per_split(ratios: Sequence[float], n_folds: int) -> list[int]:
    """Whole folds per split; a split with a non-zero ratio gets at least one, train takes the rest."""
    counts = [0, 0, 0]
    for i in (2, 1):  # test, then valid
        if ratios[i] > 0:
            counts[i] = max(1, round(ratios[i] * n_folds))
    counts[0] = n_folds - counts[1] - counts[2]
    return counts


def grouped_split(
    samples: Sequence[Sample], groups: Mapping[str, str], ratios: Sequence[float], seed: int
) -> Index:
    """Split so that every group lies in one split, classes stay balanced, and `seed` fixes the result."""
    ordered = sorted(samples)
    n_groups = len({groups[path] for path, _ in ordered})
    smallest_class = min(Counter(target for _, target in ordered).values(), default=0)
    n_folds = min(MAX_FOLDS, n_groups, smallest_class)
    needed = sum(1 for r in ratios if r > 0)
    folds_per_split = _folds_per_split(ratios, n_folds)
    if n_folds < max(needed, 2) or (ratios[0] > 0 and folds_per_split[0] < 1):
        raise DatasetLayoutError(
            f"data.group_by: {len(ordered)} images in {n_groups} group(s), smallest class {smallest_class}: too "
            f"few to split by data.split_ratios={list(ratios)} with whole groups"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    targets = np.array([target for _, target in ordered])
    group_ids = np.array([groups[path] for path, _ in ordered])
    owner = [split for split, n in zip(SPLITS, folds_per_split, strict=True) for _ in range(n)]
    index: Index = {split: [] for split in SPLITS}
    for fold, (_, members) in enumerate(splitter.split(targets, targets, group_ids)):
        index[owner[fold]].extend(ordered[i] for i in sorted(members))
    return index


def cap_per_class(
    samples: Sequence[Sample], groups: Mapping[str, str], max_per_class: int, seed: int
) -> list[Sample]:
    """A seeded subset with at most `max_per_class` images per class, made of whole groups (a file is its own
    group when there are none), so that a subset never breaks a group across splits."""
    members: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(samples):
        members[groups.get(sample[0], sample[0])].append(sample)
    order = sorted(members)
    random.Random(seed).shuffle(order)
    taken: list[Sample] = []
    counts: Counter[int] = Counter()
    for group in order:
        adds = Counter(target for _, target in members[group])
        if all(counts[t] + n <= max_per_class for t, n in adds.items()):
            taken.extend(members[group])
            counts.update(adds)
    return sorted(taken)
