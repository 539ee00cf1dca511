"""Re-seed the global RNGs at every training epoch from (seed, epoch): a resumed epoch repeats the original one."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochSeedCallback(L.Callback):
    """Dropout and device-side augmentation draw from the global torch RNG in the main process. Its state at the
    start of epoch N depends on everything the process did before (an uninterrupted run trained epochs 0..N-1, a
    run resumed from last.ckpt did not), so it is reset here to a function of (seed, N); the data order and
    CPU augmentations are already such a function (``data/epoch_sampler.py``)."""

    def __init__(self, seed: int | None) -> None:
        self.seed = None if seed is None else int(seed)  # seed=null: an unseeded run, nothing to repeat

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.seed is None:
            return
        value = epoch_seed(self.seed, trainer.current_epoch)
        torch.manual_seed(value)  # every device's generator as well
        np.random.seed(value)
        random.seed(value)
