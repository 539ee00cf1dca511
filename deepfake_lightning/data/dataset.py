"""Image dataset whose unreadable files are dropped and reported instead of killing the DataLoader."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from deepfake_lightning.data.images import BadImageError, load_rgb
from deepfake_lightning.data.index import Sample
from deepfake_lightning.utils.config_schema import DataSettings


class ImageDataset(Dataset):
    """Yields `{"image", "target", "path"}`; a bad file yields `{"skipped": path}` when `on_bad_image="skip"`."""

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[np.ndarray], torch.Tensor],
        on_bad_image: str = "skip",
        decoder: str = "auto",
        crop: Callable[[str, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        DataSettings.check_value("on_bad_image", on_bad_image)
        DataSettings.check_value("decoder", decoder)
        self.samples = list(samples)
        self.transform = transform
        self.on_bad_image = on_bad_image
        self.decoder = decoder
        self.crop = (
            crop  # data.face_crop: the image's aligned face (data/face_crops.py), before the transform
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key`` is an index, or ``(index, augmentation seed)`` from ``EpochSampler`` (training): the transform
        is then re-seeded per sample, so augmentations do not depend on the worker or on earlier epochs."""
        index, augment_seed = key if isinstance(key, tuple) else (key, None)
        path, target = self.samples[index]
        load = functools.partial(self._load, index, path, augment_seed)
        return transformed_sample(load, path, target, self.transform, augment_seed, self.on_bad_image)

    def _load(self, index: int, path: str, augment_seed: int | None) -> np.ndarray:
        """The decoded image of sample `index`, before the transform: where a subclass changes the image itself
        (``self_blend.SelfBlendDataset`` blends fakes from reals); with `crop`, the image's aligned face."""
        image = load_rgb(path, decoder=self.decoder)
        return image if self.crop is None else self.crop(path, image)


def transformed_sample(
    load: Callable[[], np.ndarray],
    path: str,
    target: int,
    transform: Callable[..., torch.Tensor],
    augment_seed: int | None,
    on_bad_image: str,
) -> dict[str, Any]:
    """One sample as every dataset yields it: the decoded image (`load()`) through `transform`, re-seeded with
    `augment_seed` when training; an undecodable image is `{"skipped": path}` unless `on_bad_image="raise"`.
    Folder images (`ImageDataset`) and streamed shards (`data/shard_datasets.py`) differ only in `load`."""
    try:
        image = load()
        image = transform(image) if augment_seed is None else transform(image, seed=augment_seed)
    except BadImageError:
        if on_bad_image == "raise":
            raise
        return {"skipped": path}
    return {"image": image, "target": torch.tensor(float(target)), "path": path}


def collate_skipping(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch the good items; carry the skipped paths along so the main process can count and log them."""
    good = [item for item in items if "skipped" not in item]
    skipped = [item["skipped"] for item in items if "skipped" in item]
    if good:
        batch = default_collate(good)
    else:
        batch = {"image": torch.empty(0), "target": torch.empty(0), "path": []}
    batch["skipped"] = skipped
    return batch
