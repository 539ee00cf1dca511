"""The benchmark's labelled JPEG set: the synthetic generator's faces (generated once, cached) or a user folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from deepfake_lightning.data.index import Sample, index_faces140k, index_folder
from deepfake_lightning.data.synthetic import generate_synthetic_dataset


def bench_image_set(
    cache_dir: str | Path, n_images: int, n_labelled: int, image_size: int, seed: int = 0, workers: int = 1
) -> tuple[list[Sample], list[Sample]]:
    """(`n_images` samples to time and calibrate on, `n_labelled` held-out ones), half real half fake each.

    The generator reuses an existing set with the same parameters, so repeated bench runs pay this once.
    """
    out = Path(cache_dir) / f"jpegs_{image_size}px_n{n_images}_t{n_labelled}_s{seed}"
    root = generate_synthetic_dataset(
        out,
        n_train=max(1, n_images // 2),
        n_valid=0,
        n_test=max(1, n_labelled // 2),
        image_size=image_size,
        seed=seed,
        workers=workers,
    )
    index_log = logging.getLogger("deepfake_lightning.data.index")
    level = index_log.level
    index_log.setLevel(logging.ERROR)  # silence "split is not the published 140k size": it is a bench set
    try:
        index = index_faces140k(root)
    finally:
        index_log.setLevel(level)
    return sorted(index["train"]), sorted(index["test"])


def folder_image_set(
    root: str | Path, n_images: int, n_labelled: int, split_ratios: Sequence[float], seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """A labelled folder's train split to time and calibrate on, its test split to measure AUROC on.

    The same split a checkpoint trained with `data=folder` saw, so its AUROC is on images it never trained on.
    Each part is class-balanced where the split allows it.
    """
    index = index_folder(root, split_ratios, seed)
    timed, labelled = _balanced(index["train"], n_images), _balanced(index["test"], n_labelled)
    if not timed or len({t for _, t in labelled}) < 2:
        raise ValueError(
            f"images.root={root}: need train images and both classes in the test split "
            f"(found {len(index['train'])} train, {len(index['test'])} test)"
        )
    return timed, labelled


def _balanced(samples: list[Sample], n: int) -> list[Sample]:
    """Up to n samples, alternating classes in sorted order, so any prefix is balanced too."""
    by_class = [sorted(s for s in samples if s[1] == target) for target in (0, 1)]
    mixed = [s for pair in zip(*by_class, strict=False) for s in pair]
    longer = max(by_class, key=len)
    mixed += longer[min(map(len, by_class)) :]
    return mixed[:n]
