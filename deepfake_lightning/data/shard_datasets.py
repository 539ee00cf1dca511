"""Datasets over LitData shards (shard_format.py): the streamed training split and the indexed eval splits.

Both decode the stored file bytes with `images.decode_rgb` and run the project's transforms, and yield what
`ImageDataset` yields (`dataset.transformed_sample`): `{"image", "target", "path"}`, or `{"skipped": path}` for an
undecodable image. `path` is the file's path relative to the source data root.

* Training (`ShardStream`, `TrainShardLoader`): a local folder is read in place (`in_place`). LitData deals
  whole-batch runs of chunks to every DDP rank and loader worker (disjoint; every rank gets the same number of full
  batches), shuffles chunks and the samples inside them per epoch from (seed, epoch), and
  `StreamingDataLoader.state_dict` is what Lightning saves in the checkpoint (its fit loop saves the state of any
  loader that has one), so a run resumed mid-epoch continues the epoch.
  Augmentation is seeded per sample from (seed, epoch, sample id) (`epoch_sampler.sample_seed`).
* Evaluation (`ShardSplit`): a map-style dataset read by position, so validation and test are ordered, sharded
  by Lightning's DistributedSampler and gathered exactly as for folder data; `.samples` and a settable
  `.transform` serve calibration, robustness and explanations unchanged.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from litdata import StreamingDataLoader, StreamingDataset
from litdata.streaming.posix_fast import PosixFastProfile

from deepfake_lightning.data.dataset import transformed_sample
from deepfake_lightning.data.epoch_sampler import sample_seed
from deepfake_lightning.data.images import decode_rgb
from deepfake_lightning.data.index import DatasetLayoutError, Sample

Transform = Callable[..., torch.Tensor]
# LitData deserializes a window of rows around each one read ("auto": 256 rows for a sample of a few `bytes` and
# `str` leaves under 64 KB), for sequential readers of small text rows. A fully shuffled chunk reads its rows in
# random order, so each image read unpacked (and copied) ~250 others' bytes and kept one: 3.6 of 14.4 s in a
# cProfile of 20 batches in one process. Evaluation loaders split a split's consecutive
# batches between workers, so each worker would unpack every window too. 0: unpack the requested row only.
ITEM_DECODE = 0


def in_place(detected: PosixFastProfile | None) -> PosixFastProfile | None:
    """How the training stream reads a local folder: in place, every chunk memory-mapped (LitData's "POSIX-fast"),
    always with its local-disk profile; None (a bucket) stays None: its chunks are downloaded into the cache.

    In place, because otherwise a chunk that two loader workers or DDP ranks share is not memory-mapped (LitData
    may delete a cached copy under a co-reader), and LitData then reads the whole chunk file for each of its
    images: 36 ms an image with 64 MB chunks, against ~4 ms to decode and augment one. One chunk in 28 with 2
    workers, 3 with 4, 7 with 8; an epoch of raw reads of the 100k-image bench set with 2 workers took 262 s
    against 3 s in place. The local-disk profile, because on a mount LitData takes for a parallel filesystem
    (NFS, Lustre, Vast, ...) it switches to its window shuffle, which deals each worker the same stripe of whole
    chunks every epoch; the local-disk profile keeps its full shuffle (chunks permuted over all workers and ranks
    every epoch, cut at whole batches) on any mount, the order the resume and DDP tests check."""
    return None if detected is None else PosixFastProfile(kind="posix")


def shard_sample(
    item: dict[str, Any], transform: Transform, on_bad_image: str, decoder: str, augment_seed: int | None
) -> dict[str, Any]:
    """A stored sample through the project's decoding and transform."""
    path = item["path"]
    load = functools.partial(decode_rgb, bytes(item["image"]), path, decoder=decoder)
    return transformed_sample(load, path, int(item["label"]), transform, augment_seed, on_bad_image)


class ShardStream(StreamingDataset):
    """The training split as LitData streams it: shuffled per epoch, split between ranks and workers."""

    def __init__(
        self,
        uri: str,
        image_transform: Transform,
        seed: int,
        on_bad_image: str = "skip",
        decoder: str = "auto",
        cache_dir: str | None = None,
        max_cache_size: str | None = None,
    ) -> None:
        # item_shuffle_window="full": a full permutation inside each chunk (LitData's default shuffles blocks of 256)
        # batch_decode=ITEM_DECODE: see its comment; LitData's "auto" made this reader 0.8x the folder's speed
        super().__init__(
            uri,
            cache_dir=cache_dir,
            max_cache_size=max_cache_size,
            shuffle=True,
            seed=seed,
            item_shuffle_window="full",
            batch_decode=ITEM_DECODE,
        )
        self.posix_fast = in_place(self.posix_fast)
        # not `transform`: StreamingDataset applies an attribute of that name to the raw item itself
        self.image_transform = image_transform
        self.on_bad_image, self.decoder = on_bad_image, decoder

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item = super().__getitem__(index)
        epoch = (
            self.current_epoch - 1
        )  # LitData counts epochs from 1, Lightning (and sample_seed's callers) from 0
        seed = sample_seed(self.seed, epoch, int(item["id"]))
        return shard_sample(item, self.image_transform, self.on_bad_image, self.decoder, seed)


class TrainShardLoader(StreamingDataLoader):
    """LitData's loader, numbering epochs as the trainer does and resumed by the data module.

    LitData counts an epoch each time the loader is iterated, from 1; Lightning iterates it once per epoch, so
    starting the count at the trainer's epoch keeps the two in step. Resuming goes through the data module's
    checkpoint state (`StreamingDataModule.state_dict`), which knows whether the epoch had ended: Lightning
    2.6 restores a loader's own state only when the loader is built after the checkpoint is read, which
    `trainer.estimated_stepping_batches` (the schedulers use it) prevents, and it would replay an epoch that
    `limit_train_batches` had cut short. Its own `load_state_dict` call is therefore ignored."""

    def __init__(
        self, dataset: ShardStream, start_epoch: int = 0, resume: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.current_epoch = start_epoch  # LitData adds 1 as each epoch starts
        self._restored_epoch_started = False
        if resume is not None:  # a checkpoint from the middle of an epoch: the rest of that epoch comes first
            super().load_state_dict(resume)

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        """Lightning's restore of its own copy of the state: the data module has resumed this loader already."""

    def __iter__(self) -> Any:
        # LitData keeps replaying a restored epoch until one iteration runs to its end; an epoch cut short by
        # limit_train_batches never does, so the next iteration after a restored one is a new epoch
        if self._restored_epoch_started:
            self.restore = False
        self._restored_epoch_started = self.restore
        return super().__iter__()


class ShardSplit(torch.utils.data.Dataset):
    """An evaluation split read by position; `samples` (path, label) are the split's rows of splits.csv."""

    def __init__(
        self,
        uri: str,
        samples: Sequence[Sample],
        transform: Transform,
        on_bad_image: str = "skip",
        decoder: str = "auto",
        cache_dir: str | None = None,
        max_cache_size: str | None = None,
    ) -> None:
        self.uri, self.samples, self.transform = uri, list(samples), transform
        self.on_bad_image, self.decoder = on_bad_image, decoder
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self._shards: StreamingDataset | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.samples)

    def _opened(self) -> StreamingDataset:
        """One reader per process: DataLoader workers open their own."""
        if self._shards is None or self._pid != os.getpid():
            self._shards = StreamingDataset(
                self.uri,
                cache_dir=self.cache_dir,
                max_cache_size=self.max_cache_size,
                batch_decode=ITEM_DECODE,
            )
            self._pid = os.getpid()
        return self._shards

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_shards": None, "_pid": -1}

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        item = self._opened()[index]
        path = self.samples[index][0]
        if int(item["id"]) != index or item["path"] != path:
            raise DatasetLayoutError(
                f"{self.uri}: sample {index} is {item['path']!r}, splits.csv says {path!r}: the chunks and "
                "splits.csv are not from one run of python -m deepfake_lightning.data.shard; write them again"
            )
        return shard_sample(item, self.transform, self.on_bad_image, self.decoder, None)
