"""Score many unlabelled image files with a deployed detector; every file yields one row, errors included.

The `predict` command's loop, single process and per rank of the distributed job (`distributed_predict.py`).
Labelled evaluation logits of a checkpoint over its datamodule are `evaluation/logits.py`'s.

Decoding and cropping run in workers, the model in the calling thread: while the model scores one batch, the
workers prepare the next ones, so end to end runs at the model's rate whenever decoding keeps up. Workers are
threads of this process when the model runs on the CPU (`decode_threads.py` says why) or DataLoader processes
(with a GPU, and in the distributed job). Batches arrive as uint8 and are normalized here
(`uint8_transfer.py`). A file that cannot be read (or is smaller than `min_size`) gets its message in `error`
and an empty `p_fake`; it never stops the run.

`batch_size=None` and `num_workers=None` pick what `bench` measured fastest for the detector's backend
(`Backend.preferred_batch`, docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from deepfake_lightning.inference.detector import BaseDetector, ImagePreparer
from deepfake_lightning.inference.face_regions import FACE_COLUMNS
from deepfake_lightning.prediction.decode_threads import thread_batches
from deepfake_lightning.prediction.image_check import as_refusal, decode_checked, refusal_fields
from deepfake_lightning.prediction.row_writer import RowWriter
from deepfake_lightning.prediction.scoring import score_stacked, scored_fields
from deepfake_lightning.prediction.uint8_transfer import Uint8Transfer

COLUMNS = ("path", "p_fake", "label", "error")
MAX_AUTO_WORKERS = 4  # LFW-size JPEGs decode + resize at ~1600 img/s per core: 4 workers feed any CPU model
DECODE_IN = ("auto", "threads", "processes")


class FileDataset(Dataset):
    """`{"index", "path", "inputs", "face"}` per readable file (`face`: its `FaceReport` or None; `inputs`: one
    KxCxHxW tensor per preprocessing, K its faces or 1), else the refusal's row fields (`error`, `reason`)."""

    def __init__(self, paths: Sequence[str | Path], preparer: ImagePreparer, max_pixels: int) -> None:
        self.paths = [str(p) for p in paths]
        self.preparer = preparer
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        try:
            inputs, face = self.preparer(decode_checked(path, max_pixels=self.max_pixels), path)
        except Exception as err:  # one odd file (e.g. a transform failing on it) must not abort the batch
            return {"index": index, "path": path, **refusal_fields(as_refusal(err, path))}
        return {"index": index, "path": path, "inputs": inputs, "face": face}


def collate_prepared(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Every item in order, without its tensors, and the readable ones stacked (one tensor per preprocessing).

    The per-image tensors are dropped from `items` so each batch crosses from worker to main process as one
    shared-memory block per preprocessing, not one block per image as well. `default_collate` stacks straight
    into shared memory in a worker (`stack_inputs` would stack, then copy the batch there to send it).
    """
    good = []
    for item in items:
        if "error" not in item:
            good.append(item.pop("inputs"))
            item["regions"] = tuple(int(t.shape[0]) for t in good[-1])  # per column
    if not good:
        return {"items": items, "inputs": None}
    if get_worker_info() is not None:  # a DataLoader worker process
        return {"items": items, "inputs": [_cat_shared(list(column)) for column in zip(*good, strict=True)]}
    # in this process (decode threads, num_workers=0): numpy's single-threaded copy, not torch's intra-op pool
    stacked = [np.concatenate([t.numpy() for t in column]) for column in zip(*good, strict=True)]
    return {"items": items, "inputs": [torch.from_numpy(column) for column in stacked]}


def _cat_shared(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate straight into shared memory (what `default_collate` does for a stack), so the batch crosses to
    the main process without another copy. An image with several faces brings several rows."""
    if all(t.shape[0] == 1 for t in tensors):
        return default_collate([t[0] for t in tensors])
    rows = sum(int(t.shape[0]) for t in tensors)
    out = torch.empty((rows, *tensors[0].shape[1:]), dtype=tensors[0].dtype).share_memory_()
    return torch.cat(tensors, out=out)


def auto_batch_size(detector: BaseDetector) -> int:
    """The batch each backend was fastest at in `bench`; for an ensemble, the largest of its members'."""
    members = getattr(detector, "members", None) or [detector]
    return max(int(getattr(member.backend, "preferred_batch", 32)) for member in members)


def auto_num_workers(decode_in: str = "processes") -> int:
    """Decode threads: one per 2 cores (the model shares them; on 2 cores 1 thread gave 0.82-0.85 of the
    model-only rate for ONNX int8 at batch 16, 2 threads 0.79). Processes: one per core, at most 4."""
    cores = os.cpu_count() or 1
    if decode_in == "threads":
        return max(1, cores // 2)
    return max(1, min(MAX_AUTO_WORKERS, cores))


def loader_sizes(
    detector: BaseDetector, batch_size: int | None, num_workers: int | None, decode_in: str = "auto"
) -> tuple[int, int]:
    """(batch_size, num_workers) with None replaced by the measured defaults for this detector."""
    mode = auto_decode(detector) if decode_in == "auto" else decode_in
    return (
        auto_batch_size(detector) if batch_size is None else batch_size,
        auto_num_workers(mode) if num_workers is None else num_workers,
    )


def auto_decode(detector: BaseDetector) -> str:
    """`threads` when every model runs on the CPU (cores shared with decoding), `processes` with a GPU."""
    members = getattr(detector, "members", None) or [detector]
    on_gpu = any(getattr(m.backend, "device", torch.device("cpu")).type == "cuda" for m in members)
    return "processes" if on_gpu else "threads"


def batch_source(
    detector: BaseDetector,
    transfer: Uint8Transfer,
    paths: Sequence[str | Path],
    batch_size: int,
    num_workers: int,
    decode_in: str = "auto",
) -> Iterable[dict[str, Any]]:
    """Collated uint8 batches in input order: decode threads or DataLoader processes (`decode_in`)."""
    if decode_in not in DECODE_IN:
        raise ValueError(f"decode_in={decode_in!r}: expected one of {list(DECODE_IN)}")
    mode = auto_decode(detector) if decode_in == "auto" else decode_in
    if mode == "threads" and num_workers > 0:
        return thread_batches(
            FileDataset(paths, transfer.preparer, transfer.max_pixels),
            batch_size,
            num_workers,
            collate_prepared,
        )
    return file_loader(transfer, paths, batch_size, num_workers)


def file_loader(
    transfer: Uint8Transfer, paths: Sequence[str | Path], batch_size: int, num_workers: int
) -> DataLoader:
    """The DataLoader of `decode_in=processes` and of the distributed job: uint8 batches, input order."""
    dataset = FileDataset(paths, transfer.preparer, transfer.max_pixels)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_prepared,
        shuffle=False,
        prefetch_factor=4 if num_workers > 0 else None,  # small CPU batches: keep a few ahead per worker
    )


def score_batch(
    detector: BaseDetector, transfer: Uint8Transfer, batch: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per item of a collated batch, in order: `{"index", "path", "p_fake", "label", "error"}`, and with a
    face pipeline `face`, `n_faces`, `faces` (each face's box, landmarks and p_fake; the image's is the max)."""
    counts = [item["regions"] for item in batch["items"] if "error" not in item]
    stacked = transfer.normalize(batch["inputs"]) if counts else []
    scored = iter(score_stacked(detector, stacked, counts))
    rows = []
    for item in batch["items"]:
        row = {"index": item["index"], "path": item["path"], "p_fake": None, "label": None, "face": None}
        if "error" in item:
            rows.append(row | item)  # the refusal's fields
            continue
        rows.append(row | scored_fields(next(scored), item["face"], detector.threshold))
    return rows


def file_columns(detector: BaseDetector) -> list[str]:
    """The output's columns: `face`, `n_faces` and `faces` are added when the detector crops faces."""
    return [*COLUMNS, *FACE_COLUMNS] if detector.face_crop else list(COLUMNS)


def write_scored_rows(
    output: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]
) -> dict[str, int]:
    """Stream scored rows into `output` (CSV or JSON); how many were fake, real and errors."""
    counts = {"fake": 0, "real": 0, "error": 0}
    with RowWriter(output, columns) as out:
        for row in rows:
            out.write(row)
            counts[row["label"] or "error"] += 1
    return counts


@contextmanager
def progress_bar(total: int, enabled: bool, description: str = "predicting") -> Iterator[Any]:
    """A rich progress bar with `advance(n)`, or a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def predict_files(
    detector: BaseDetector,
    paths: Sequence[str | Path],
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = False,
    decode_in: str = "auto",
) -> Iterator[dict[str, Any]]:
    """Yield `{"index", "path", "p_fake", "label", "error", "face"}` per file, in input order.

    None picks `auto_batch_size` / `auto_num_workers`; `num_workers=0` decodes in this thread. `decode_in`:
    `threads`, `processes` (DataLoader workers) or `auto` (threads on a CPU, processes with a GPU).
    """
    batch_size, num_workers = loader_sizes(detector, batch_size, num_workers, decode_in)
    transfer = Uint8Transfer(detector)
    batches = batch_source(detector, transfer, paths, batch_size, num_workers, decode_in)
    with progress_bar(len(paths), progress) as advance:
        for batch in batches:
            yield from score_batch(detector, transfer, batch)
            advance(len(batch["items"]))
