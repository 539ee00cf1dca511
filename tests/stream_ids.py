"""Callbacks for the streaming tests: which samples each rank saw, and a stop in the middle of an epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L


class RecordSampleIds(L.Callback):
    """Writes `{stage: [[epoch, batch_idx, [path, ...]], ...]}` to `<path>/rank<N>.json` when fitting and testing
    end (and after every train batch, so a stopped run leaves what it saw)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seen: dict[str, list[Any]] = {"train": [], "valid": [], "test": []}

    def _record(self, trainer: L.Trainer, stage: str, batch: Any, batch_idx: int) -> None:
        self.seen[stage].append([trainer.current_epoch, batch_idx, list(batch["path"])])

    def _write(self, trainer: L.Trainer) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._record(trainer, "train", batch, batch_idx)
        self._write(trainer)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int, *_: Any
    ) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "valid", batch, batch_idx)

    def on_test_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int, *_: Any
    ) -> None:
        self._record(trainer, "test", batch, batch_idx)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._write(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._write(trainer)


class Interrupted(Exception):
    """Raised by `StopMidEpoch`: the run ends here, as a killed one would."""


class StopMidEpoch(L.Callback):
    """Raises `Interrupted` when batch `batch` of epoch `epoch` is about to train."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise Interrupted(f"stopped at epoch {self.epoch}, batch {self.batch}")
