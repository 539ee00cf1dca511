"""Counts and logs the images the data loaders dropped as unreadable (`data.on_bad_image=skip`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


class SkippedImagesCallback(L.Callback):
    """Skipped paths travel in `batch["skipped"]` from the workers; this is where they are counted."""

    def __init__(self, output_dir: str | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.skipped: dict[str, set[str]] = {}

    def _collect(self, stage: str, batch: Any) -> None:
        if isinstance(batch, dict) and batch.get("skipped"):
            self.skipped.setdefault(stage, set()).update(batch["skipped"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._collect("train", batch)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:  # noqa: ANN001
        self._collect("val", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._collect("test", batch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report()

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report()

    def total(self) -> int:
        return len(set().union(*self.skipped.values())) if self.skipped else 0

    @rank_zero_only
    def _report(self) -> None:
        if not self.skipped:
            return
        for stage, paths in sorted(self.skipped.items()):
            log.warning("skipped %d unreadable image(s) in %s: %s", len(paths), stage, sorted(paths)[:20])
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            payload = {stage: sorted(paths) for stage, paths in self.skipped.items()}
            (self.output_dir / "skipped_images.json").write_text(json.dumps(payload, indent=2))
