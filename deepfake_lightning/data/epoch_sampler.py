"""Training order and augmentation randomness that depend only on (seed, epoch, position): resumable runs.

A resumed run (``ckpt_path=last``) must train the epochs after the checkpoint exactly as the uninterrupted run
would have, or its best score and best.ckpt differ from that run's. Three sources of randomness break that:

* ``DataLoader(shuffle=True)`` draws each epoch's order from the global RNG, whose state at that moment depends on
  everything the process did before (a resumed process did less);
* albumentations' ``Compose`` keeps its own RNG, seeded from the OS (not from ``seed``) unless given a seed, and
  each DataLoader worker gets a copy of it;
* persistent workers carry their RNG from one epoch into the next.

``EpochSampler`` yields ``(index, augmentation_seed)`` pairs drawn from ``(seed, epoch)`` alone, and
``ImageDataset`` re-seeds the training transform with that per-sample seed, so order and augmentations are the same
whichever process, worker or epoch history produces them. (Dropout and device-side augmentation use the global
RNG in the main process: ``callbacks.EpochSeedCallback`` re-seeds it at every epoch start.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def run_seed() -> int:
    """The run's seed: ``seed_everything`` (train.py) exports it as ``PL_GLOBAL_SEED``. Without one (``seed=null``):
    0 under DDP, where every rank must draw the same permutation to cut its shard from (as Lightning's
    DistributedSampler does), else this process's torch seed."""
    value = os.environ.get("PL_GLOBAL_SEED")
    if value is not None:
        return int(value)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return 0
    return int(torch.initial_seed() % 2**32)


class EpochSampler(Sampler[tuple[int, int]]):
    """A random permutation per epoch with a seed per sample, both a function of ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every training epoch; each iteration also moves to the next epoch, so the
    order still changes per epoch when a DDP sampler wrapper (which does not forward ``set_epoch``) iterates it.
    """

    def __init__(self, n: int, seed: int, epoch: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, epoch
        self.next_epoch = epoch  # the epoch after the last one iterated: what a resumed run starts at

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        seeds = rng.integers(0, 2**31, size=self.n)
        self.epoch += 1
        self.next_epoch = self.epoch
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))


def sample_seed(seed: int, epoch: int, sample_id: int) -> int:
    """The augmentation seed of one sample in one epoch where the loader, not ``EpochSampler``, picks the order
    (streamed shards, data/shard_datasets.py): a function of ``(seed, epoch, sample id)`` alone, so it is the same
    whichever rank, worker or resumed process draws the sample."""
    return int(np.random.default_rng([seed, epoch, sample_id]).integers(0, 2**31))


def epoch_sampler(n: int, trainer: object | None, resume_epoch: int | None = None) -> EpochSampler:
    """The training sampler, starting at the epoch the trainer is about to run. With DataLoader workers the first
    epoch's indices are drawn as the loader starts, before Lightning's ``set_epoch``, and in a resumed run Lightning
    does not know the epoch number yet at that point: ``resume_epoch`` (the data module's state, saved in the
    checkpoint) says it."""
    return EpochSampler(n, run_seed(), training_epoch(trainer, resume_epoch))


def training_epoch(trainer: object | None, resume_epoch: int | None = None) -> int:
    """The training epoch a loader made now starts at: ``resume_epoch`` (from the checkpoint) when resuming, else
    the trainer's count of finished epochs (0 without a trainer)."""
    if resume_epoch is not None:
        return resume_epoch
    progress = getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_progress", None), "current", None)
    return int(getattr(progress, "processed", 0) or 0)
