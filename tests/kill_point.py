"""A callback for the kill -9 test: at a chosen training batch it writes a file and waits to be killed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L


class KillPoint(L.Callback):
    """When batch `batch` of epoch `epoch` starts: write "epoch batch global_step" to `path`, then sleep.

    Once only: when `path` already exists (a requeued SLURM job running the same config again) it does nothing.
    """

    def __init__(self, path: str, epoch: int = 1, batch: int = 3, wait_s: float = 300.0) -> None:
        self.path, self.epoch, self.batch, self.wait_s = Path(path), epoch, batch, wait_s

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch and not self.path.exists():
            self.path.write_text(f"{trainer.current_epoch} {batch_idx} {trainer.global_step}")
            time.sleep(self.wait_s)  # the test sends SIGKILL while we are mid-epoch


class StopAfterEpoch(L.Callback):
    """Ends training after epoch `epoch`, as an interruption would, without changing `max_epochs` (and with it the
    learning-rate schedule, which a resumed run must share with the uninterrupted one)."""

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True
