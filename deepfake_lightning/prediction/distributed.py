"""Batch prediction as a distributed job: Lightning's `trainer.predict`, one shard per rank, merged on rank 0.

`python -m deepfake_lightning.predict ... trainer=ddp_cpu` (2 CPU processes, gloo) or `trainer=ddp
trainer.devices=8 trainer.num_nodes=4` (GPUs), started like training: Lightning launches the ranks itself,
or torchrun / SLURM (`hydra/launcher=slurm`) do and Lightning joins them. Each rank scores the files
Lightning's predict sampler hands it (rank r of W: files r, r+W, r+2W, ...), its `ShardWriter` appends each
finished batch to `OUTPUT.shards/rank_R.jsonl` (memory stays flat for millions of files), and once every rank
is done rank 0 merges the shards into OUTPUT in input order, each file once, and deletes them.

The shards and OUTPUT must be on a filesystem every rank sees (one machine, or a shared mount across nodes).
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.prediction.files import (
    file_loader,
    loader_sizes,
    score_batch,
    write_scored_rows,
)
from deepfake_lightning.prediction.uint8_transfer import Uint8Transfer

log = logging.getLogger(__name__)


class ScoringModule(L.LightningModule):
    """A detector and its files for `trainer.predict`; the detector is built in `setup`, on the rank's device.

    Rank 0 builds first and the other ranks after it, so a model that is made on first use (the int8 cache)
    is made once. `predict_dataloader` is the single-process loader; Lightning adds the rank's sampler.
    """

    def __init__(
        self,
        build: Callable[[str], BaseDetector],
        paths: Sequence[Path],
        batch_size: int | None,
        num_workers: int | None,
    ) -> None:
        super().__init__()
        self._build = build
        self.paths = list(paths)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.detector: BaseDetector | None = None
        self.transfer: Uint8Transfer | None = None

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        if not self.trainer.is_global_zero:
            strategy.barrier("rank 0 built its detector")
        self.detector = self._build(str(strategy.root_device))
        self.transfer = Uint8Transfer(self.detector)
        if self.trainer.is_global_zero:
            strategy.barrier("rank 0 built its detector")

    def predict_dataloader(self) -> DataLoader:
        assert self.detector is not None and self.transfer is not None
        batch_size, workers = loader_sizes(self.detector, self.batch_size, self.num_workers, "processes")
        if self.num_workers is None:  # the automatic count is per machine: share it between its ranks
            workers = max(1, workers // max(1, self.trainer.num_devices))
        return file_loader(self.transfer, self.paths, batch_size, workers)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        assert self.detector is not None and self.transfer is not None, "used outside trainer.predict"
        return score_batch(self.detector, self.transfer, batch)


def shard_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".shards")


class ShardWriter(BasePredictionWriter):
    """Each rank appends its rows to its own JSON-lines shard; rank 0 merges them at the end of predict."""

    def __init__(
        self, output: str | Path, columns: Callable[[BaseDetector], Sequence[str]], expected: int
    ) -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.columns = columns  # of the built detector: the face columns only when it crops faces
        self.expected = expected
        self.shards = shard_dir(output)
        self.counts: dict[str, int] = {}
        self._handle: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:  # shards of an earlier, interrupted run must not be merged into this one
            shutil.rmtree(self.shards, ignore_errors=True)
            self.shards.mkdir(parents=True)
        trainer.strategy.barrier("prediction shards ready")
        path = self.shards / f"rank_{trainer.global_rank:05d}.jsonl"
        self._handle = path.open("w", encoding="utf-8")

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: list[dict[str, Any]],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        # json keeps floats exact (repr) and non-UTF-8 file names (as \\udcXX escapes)
        self._handle.writelines(json.dumps(row) + "\n" for row in prediction)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._handle.close()
        trainer.strategy.barrier("prediction shards written")
        if trainer.is_global_zero:
            files = sorted(self.shards.glob("rank_*.jsonl"))
            columns = self.columns(pl_module.detector)
            self.counts = merge_shard_files(files, self.output, columns, self.expected)
            shutil.rmtree(self.shards)
        trainer.strategy.barrier("prediction shards merged")


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def merge_rows(shards: Sequence[Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Rows of every shard (each in increasing `index`) in input order, each index once.

    A sampler that pads shards to equal length (torch's `DistributedSampler`) repeats the first items on the
    last ranks; Lightning's predict sampler does not pad, but a repeated index is dropped either way.
    """
    last = None
    for row in heapq.merge(*shards, key=lambda r: r["index"]):
        if row["index"] != last:
            last = row["index"]
            yield row


def merge_shard_files(
    files: Sequence[Path], output: Path, columns: Sequence[str], expected: int
) -> dict[str, int]:
    """Write the merged rows to `output` (CSV or JSON); counts per label. Raises if a file is missing."""
    counts = write_scored_rows(output, columns, merge_rows([_rows(f) for f in files]))
    written = sum(counts.values())
    if written != expected:
        raise RuntimeError(
            f"{output}: merged {written} rows from {len(files)} shard(s), expected {expected}; "
            f"was a rank's shard lost (shards must be on a filesystem every rank sees)?"
        )
    log.info("merged %d shard(s) into %s: %s", len(files), output, counts)
    return counts


def predict_distributed(
    trainer_cfg: Any,
    build: Callable[[str], BaseDetector],
    paths: Sequence[Path],
    output: str | Path,
    columns: Callable[[BaseDetector], Sequence[str]],
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score `paths` into `output` with `trainer.predict` on every rank of `trainer_cfg` (a `trainer` node).

    The Trainer runs fp32 whatever `trainer.precision` says: scores must equal the single-process ones.
    Returns the label counts on rank 0, `{"status": "ok", "rank": r}` on the others.
    """
    writer = ShardWriter(output, columns, expected=len(paths))
    trainer: L.Trainer = instantiate(
        trainer_cfg,
        logger=False,
        callbacks=[writer],
        precision="32-true",
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
    )
    module = ScoringModule(build, paths, batch_size, num_workers)
    trainer.predict(module, return_predictions=False)
    if not trainer.is_global_zero:
        return {"status": "ok", "rank": trainer.global_rank}
    return {"status": "ok", "n": len(paths), **writer.counts, "ranks": trainer.world_size}
