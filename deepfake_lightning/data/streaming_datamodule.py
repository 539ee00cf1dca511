"""`data=streaming data.uri=DIR_OR_URL`: train and evaluate from the shards `python -m deepfake_lightning.data.shard`
wrote, on one machine or many, from a local folder or an object store (LitData streams and caches the chunks).

Everything but the reading is `DeepfakeDataModule`'s: the transforms, `augment_on`, channels-last batches, the
counts and `splits.csv` (from the shards' own, paths relative to the source root), the single-class warnings and
the group-leakage report. The datasets are in shard_datasets.py.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.dataset import collate_skipping
from deepfake_lightning.data.epoch_sampler import run_seed, training_epoch
from deepfake_lightning.data.index import DatasetLayoutError, Index
from deepfake_lightning.data.shard_datasets import ShardSplit, ShardStream, TrainShardLoader
from deepfake_lightning.data.shard_format import ShardSet, open_shard_set, split_uri
from deepfake_lightning.data.split_checks import require_trainable
from deepfake_lightning.utils.config_schema import StreamingDataSettings


def _world_size(trainer: Any) -> int:
    return int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1


class StreamingDataModule(DeepfakeDataModule):
    """Shards instead of files; the split, labels and groups are the shards' own."""

    config_schema = StreamingDataSettings

    def __init__(
        self, uri: str, cache_dir: str | None = None, max_cache_size: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("persistent_workers", False)
        StreamingDataSettings.check(
            {"uri": uri, "cache_dir": cache_dir, "max_cache_size": max_cache_size, **kwargs}
        )
        super().__init__(root=str(uri), layout="folder", **kwargs)
        self.uri = str(uri)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.max_cache_size = max_cache_size
        self.shards: ShardSet | None = None
        self.train_loader: TrainShardLoader | None = None
        self._resume_loader: dict[str, Any] | None = None  # a mid-epoch loader state, from a checkpoint

    def build_index(self) -> Index:
        self.shards = open_shard_set(self.uri, self.cache_dir)
        self.groups = self.shards.groups
        return self.shards.index

    def _dataset(self, split: str, train: bool) -> ShardStream | ShardSplit:  # type: ignore[override]
        self.setup()
        assert self.index is not None
        require_trainable(self.index[split], split, self.uri)
        transform = self.image_transform(train)
        where = split_uri(self.uri, split)
        reading = (self.on_bad_image, self.decoder, self.cache_dir, self.max_cache_size)
        if train:
            return ShardStream(where, transform, run_seed(), *reading)
        return ShardSplit(where, self.index[split], transform, *reading)

    def _loader(self, split: str, train: bool) -> DataLoader:
        if not train:  # ordered, sharded by Lightning's DistributedSampler: as for folder data
            return super()._loader(split, train)
        trainer = getattr(self, "trainer", None)
        dataset = self._dataset(split, train)
        ranks, n = _world_size(trainer), len(self.index["train"])  # type: ignore[index]
        if n < self.batch_size * ranks and ranks > 1:
            raise DatasetLayoutError(
                f"data split 'train' of {self.uri} has {n} images: fewer than one batch per DDP rank "
                f"(data.batch_size={self.batch_size} x {ranks} ranks)"
            )
        workers = self.num_workers
        self.train_loader = TrainShardLoader(
            dataset,
            start_epoch=training_epoch(trainer, self._resume_train_epoch),
            resume=self._resume_loader,
            batch_size=self.batch_size,
            # full batches only, as for folder data (and required under DDP: every rank takes as many steps)
            drop_last=ranks > 1 or n > self.batch_size,
            num_workers=workers,
            collate_fn=collate_skipping,
            pin_memory=self.pin_memory and self._on_gpu(),
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
        )
        self._resume_loader = None
        return self.train_loader

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the epoch to start at and, for a checkpoint written in the middle of an
        epoch, the loader's position in it (LitData's state: which samples every rank and worker has yielded)."""
        loader = self.train_loader
        if loader is None or loader.current_epoch == 0:  # not iterated yet
            return {}
        trainer = getattr(self, "trainer", None)
        progress = trainer.fit_loop.epoch_loop.batch_progress if trainer is not None else None
        if progress is None or progress.is_last_batch:  # LitData numbers the epoch it iterates from 1
            return {"next_train_epoch": loader.current_epoch}
        return {"next_train_epoch": loader.current_epoch - 1, "train_loader": loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._resume_loader = state_dict.get("train_loader")
