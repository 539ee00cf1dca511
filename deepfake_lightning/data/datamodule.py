"""One LightningDataModule for every on-disk layout (faces140k, folder); the synthetic set reuses it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from deepfake_lightning.data.dataset import ImageDataset, collate_skipping
from deepfake_lightning.data.device_augment import DEVICE_GROUPS, DeviceAugment
from deepfake_lightning.data.epoch_sampler import EpochSampler, epoch_sampler
from deepfake_lightning.data.face_crops import FaceCropper, detect_index
from deepfake_lightning.data.images import BadImageError, load_rgb
from deepfake_lightning.data.index import (
    SPLITS,
    DatasetLayoutError,
    Index,
    describe,
    index_faces140k,
    index_folder_with_groups,
)
from deepfake_lightning.data.labels_csv import read_column, resolve_labels_csv
from deepfake_lightning.data.leakage import GroupLeak, Leak, report_group_leakage, report_leakage
from deepfake_lightning.data.self_blend import (
    blended_splits,
    report_self_blend,
    self_blend_dataset,
    served_counts,
)
from deepfake_lightning.data.split_checks import require_trainable, warn_single_class_splits
from deepfake_lightning.data.split_manifest import write_split_manifest
from deepfake_lightning.data.transforms import _Pipeline, build_eval_transform, build_train_transform
from deepfake_lightning.utils.config_schema import DataSettings

log = logging.getLogger(__name__)

IMAGENET_NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class DeepfakeDataModule(L.LightningDataModule):
    """Indexes the data root once (no per-epoch re-listing) and serves train/val/test loaders.

    The arguments are checked against `DataSettings`, the schema the start-up check applies to `data.*`.
    """

    config_schema: type[DataSettings] = DataSettings

    def __init__(
        self,
        root: str,
        layout: str = "faces140k",
        image_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        preprocess: str = "resize",
        reencode_jpeg_quality: int | None = None,
        augment: Mapping[str, Any] | None = None,
        normalize: Mapping[str, Any] | None = None,
        on_bad_image: str = "skip",
        verify: bool = False,
        split_ratios: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        use_all_for_test: bool = False,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        decoder: str = "auto",
        channels_last: bool = True,
        check_leakage: bool = False,
        augment_on: str = "cpu",
        labels_csv: str | None = None,
        group_by: str | None = None,
        max_per_class: int | None = None,
        fakes: str = "dataset",
        self_blend: Mapping[str, Any] | None = None,
        face_crop: Mapping[str, Any] | None = None,
    ) -> None:
        arguments = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        DataSettings.check(arguments)
        super().__init__()
        for name, value in arguments.items():  # each argument is the attribute of its name
            setattr(self, name, value)
        # these four normalized:
        self.root = str(root)
        self.augment = _plain(augment) or {}
        self.normalize = _plain(normalize) or IMAGENET_NORMALIZE
        self.split_ratios = list(split_ratios)
        self.self_blend = _plain(self_blend) or {}
        self.face_crop = _plain(face_crop) or {}
        self.face_cropper: FaceCropper | None = None
        self.face_counts: dict[str, Any] = {}  # data.face_crop: faces found, photos without one, the cache
        self.device_augment = DeviceAugment(self.augment, self.normalize) if augment_on == "device" else None
        self.index: Index | None = None
        self.groups: dict[str, str] = {}  # path -> group, from the labels CSV's `group_by` column
        self.leaks: list[Leak] = []
        self.group_leaks: list[GroupLeak] = []
        self.verify_skipped: list[str] = []
        self.train_sampler: EpochSampler | None = None
        self._resume_train_epoch: int | None = None  # from a checkpoint (load_state_dict)
        self.feature_cache: Any = None  # during fit with feature_cache.enabled (data/cached_features.py)

    def build_index(self) -> Index:
        if self.layout == "faces140k":
            index = index_faces140k(self.root)
            if self.use_all_for_test:
                index = {"train": [], "valid": [], "test": [s for split in SPLITS for s in index[split]]}
            return index
        index, groups = index_folder_with_groups(
            self.root,
            self.split_ratios,
            self.split_seed,
            self.use_all_for_test,
            self.labels_csv,
            self.group_by,
            self.max_per_class,
        )
        self.groups = groups
        return index

    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        index = self.build_index()
        if self.verify:
            index = self._verified(index)
        if self.face_crop.get("enabled"):
            index, self.face_cropper, self.face_counts = detect_index(
                index, self.face_crop, self.on_bad_image, self.decoder
            )
        for split, counts in describe(index).items():
            log.info("data %s: %d real, %d fake (%s)", split, counts["real"], counts["fake"], self.root)
        if self.fakes == "self_blend":  # fakes made from the reals of train (and valid): data/self_blend.py
            report_self_blend(index, self.self_blend, self.root)
        else:
            warn_single_class_splits(index, self.root)
        if self.check_leakage:
            self.leaks = report_leakage(index, self.root)
        if self.groups:  # reads no file, so it runs whenever groups are known: what data.group_by promises
            self.group_leaks = report_group_leakage(index, self.groups, self.root)
        self.index = index

    def write_split_manifest(self, path: str | Path) -> Path:
        """`splits.csv` (path, split, label, group) of the index this module serves."""
        self.setup()
        assert self.index is not None
        return write_split_manifest(path, self.index, self.groups)

    def labels_csv_column(self, column: str, paths: Sequence[str], key: str) -> dict[str, str]:
        """`{path: value}` of the labels CSV's `column` (e.g. `video`, to score whole videos) for `paths`; `key`
        names the setting that asked, for the one-line error when the CSV, the column or a value is missing."""
        if self.layout != "folder":
            raise DatasetLayoutError(
                f"{key}={column!r}: needs data=folder with a labels CSV holding a {column!r} column; "
                f"this data is {self.layout}"
            )
        root = Path(self.root)
        csv_path = resolve_labels_csv(root, self.labels_csv, column, key)
        assert csv_path is not None  # resolve_labels_csv raises when a column is asked for and no CSV exists
        return dict(zip(paths, read_column(csv_path, root, paths, column, key), strict=True))

    def _verified(self, index: Index) -> Index:
        """Decode every file once before training, so bad files are known up front."""
        kept: Index = {}
        for split, samples in index.items():
            kept[split] = []
            for path, target in samples:
                try:
                    load_rgb(path, decoder=self.decoder)
                except BadImageError as err:
                    if self.on_bad_image == "raise":
                        raise
                    self.verify_skipped.append(path)
                    log.warning("skipped %s", err)
                    continue
                kept[split].append((path, target))
        if self.verify_skipped:
            log.warning("verify: skipped %d unreadable image(s)", len(self.verify_skipped))
        return kept

    def counts(self) -> dict[str, dict[str, int]]:
        self.setup()
        assert self.index is not None
        if self.fakes == "self_blend":  # as served: self-blended fakes counted, `self_blended` beside
            return served_counts(self.index, self.self_blend, self.root)
        return describe(self.index)

    def image_transform(self, train: bool) -> _Pipeline:
        """The train (augmenting) or eval transform of a decoded image, as configured."""
        quality = self.reencode_jpeg_quality
        on_device = train and self.device_augment is not None  # uint8 from workers; the device does the rest
        normalize = None if on_device else self.normalize
        if not train:
            return build_eval_transform(self.image_size, self.preprocess, normalize, quality)
        skip = DEVICE_GROUPS if on_device else ()
        return build_train_transform(
            self.image_size, self.preprocess, self.augment, normalize, quality, skip_groups=skip
        )

    def _dataset(self, split: str, train: bool) -> ImageDataset:
        self.setup()
        assert self.index is not None
        transform = self.image_transform(train)
        if self.fakes == "self_blend" and split in blended_splits(self.self_blend):
            args = (self.self_blend, self.split_seed, self.on_bad_image, self.decoder, self.face_cropper)
            return self_blend_dataset(self.index[split], split, self.root, transform, *args)
        require_trainable(self.index[split], split, self.root)
        return ImageDataset(self.index[split], transform, self.on_bad_image, self.decoder, self.face_cropper)

    def _loader(
        self, split: str, train: bool, dataset: Any = None, num_workers: int | None = None
    ) -> DataLoader:
        """Images of `split`, or another `dataset` over its samples (cached features) with the same order rules."""
        workers = self.num_workers if num_workers is None else num_workers
        dataset = self._dataset(split, train) if dataset is None else dataset
        # training order and augmentations from (seed, epoch) alone, so a resumed run repeats the uninterrupted
        # one (epoch_sampler.py); the loader's own generator keeps iterator creation off the global RNG
        sampler = None
        if train:
            sampler = self.train_sampler = self._train_sampler(len(dataset))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(sampler.seed) if sampler is not None else None,
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=workers,
            collate_fn=collate_skipping,
            pin_memory=self.pin_memory and self._on_gpu(),
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
        )

    def _train_sampler(self, n: int) -> EpochSampler:
        """Every training image once per epoch, in an order drawn from (seed, epoch); `data=multi` mixes sources."""
        return epoch_sampler(n, getattr(self, "trainer", None), self._resume_train_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the training epoch to start at when resuming (see ``epoch_sampler``)."""
        return {"next_train_epoch": self.train_sampler.next_epoch} if self.train_sampler is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_train_epoch = state_dict.get("next_train_epoch")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Device-side train augmentation (`augment_on=device`), then NHWC: channels-last makes oneDNN/cuDNN run the
        whole network channels-last, 1.4-1.9x faster training steps on CPU (docs/benchmarks.md)."""
        image = batch.get("image") if isinstance(batch, dict) else None
        if self.device_augment is not None and isinstance(image, torch.Tensor) and image.dtype == torch.uint8:
            image = batch["image"] = self.device_augment.to(image.device)(image)  # train batches only
        if self.channels_last and isinstance(image, torch.Tensor) and image.dim() == 4:
            batch["image"] = image.contiguous(memory_format=torch.channels_last)
        return batch

    def _on_gpu(self) -> bool:
        """Pinned memory only pays off when batches are copied to a GPU."""
        trainer = getattr(self, "trainer", None)
        return bool(trainer is not None and trainer.strategy.root_device.type == "cuda")

    def train_dataloader(self) -> DataLoader:
        if self.feature_cache is not None:
            return self.feature_cache.loader(self, "train")
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        if self.feature_cache is not None:
            return self.feature_cache.loader(self, "valid")
        return self._loader("valid", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def root_path(self) -> Path:
        return Path(self.root)
