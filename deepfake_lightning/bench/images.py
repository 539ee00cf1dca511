"""The benchmark's own labelled JPEG set: the synthetic generator's faces, generated once and cached."""

from __future__ import annotations

import logging
from pathlib import Path

from deepfake_lightning.data.index import Sample, index_faces140k
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
