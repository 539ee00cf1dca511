"""Per-epoch history, curves and validation confusion matrices written into the run dir as training goes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from deepfake_lightning.evaluation.plots import plot_confusion_matrix, plot_training_curves


def _scalar(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RunFilesCallback(L.Callback):
    """Writes `training_history.json`, `training_progress.png` and `val_confusion_matrix.png`.

    The module's own `on_train_epoch_end`, where train metrics are computed, runs after callbacks' hooks, so
    an epoch is recorded when its end-of-epoch checkpoint is saved, or else at the start of the next epoch or
    the end of training. The history is part of the checkpoint, so a resumed run continues it.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.history: list[dict[str, Any]] = []
        self._epoch_started = time.perf_counter()
        self._pending_epoch: int | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer, pl_module)
        self._pending_epoch = trainer.current_epoch
        self._epoch_started = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.fit_loop.epoch_loop.done:
            self._flush(trainer, pl_module)
            checkpoint.setdefault("callbacks", {})[self.state_key] = self.state_dict()

    def _flush(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending_epoch is None or trainer.sanity_checking:
            return
        record: dict[str, Any] = {"epoch": self._pending_epoch, "step": trainer.global_step}
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith(("train/", "val/", "lr")) and not name.endswith("_step"):
                scalar = _scalar(value)
                if scalar is not None:
                    record[name.removesuffix("_epoch")] = scalar
        record["epoch_seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        confusion = getattr(pl_module, "last_confusion", {}).get("val")
        if confusion is not None:
            record["val/confusion_matrix"] = confusion
        self.history.append(record)
        self._pending_epoch = None
        self._write(confusion)

    @rank_zero_only
    def _write(self, confusion: list[list[int]] | None) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "training_history.json").write_text(json.dumps(self.history, indent=2))
        plot_training_curves(self.history, self.output_dir / "training_progress.png")
        if confusion is not None:
            epoch = self.history[-1]["epoch"]
            plot_confusion_matrix(
                confusion, self.output_dir / "val_confusion_matrix.png", f"validation, epoch {epoch}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
