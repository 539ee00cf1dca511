"""A callback for the DDP tests: it empties or poisons chosen batches on one rank, as bad data would."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


def _unreadable(batch: dict[str, Any]) -> None:
    """What `collate_skipping` yields when every image of a batch was unreadable."""
    batch["skipped"] = list(batch.get("path", []))
    batch["image"], batch["target"], batch["path"] = torch.empty(0), torch.empty(0), []


class RankFaults(L.Callback):
    """On rank `empty_rank`: every training batch of epoch `empty_epoch` and every validation batch unreadable.
    On rank `nan_rank`: the labels of training batch 0 of epoch `nan_epoch` become NaN, so its loss is NaN (NaN
    images would also poison BatchNorm's running statistics, which no loss check can undo)."""

    def __init__(
        self, empty_rank: int = 1, empty_epoch: int = 0, nan_rank: int = 0, nan_epoch: int = 1
    ) -> None:
        self.empty_rank, self.empty_epoch = empty_rank, empty_epoch
        self.nan_rank, self.nan_epoch = nan_rank, nan_epoch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        rank, epoch = trainer.global_rank, trainer.current_epoch
        if rank == self.empty_rank and epoch == self.empty_epoch:
            _unreadable(batch)
        if rank == self.nan_rank and epoch == self.nan_epoch and batch_idx == 0:
            batch["target"] = torch.full_like(batch["target"], float("nan"))

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.global_rank == self.empty_rank:
            _unreadable(batch)
