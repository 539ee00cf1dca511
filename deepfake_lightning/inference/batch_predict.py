"""Score many image files with DataLoader workers; every file yields exactly one row, errors included.

Decoding and cropping run in the workers, the model in the main process: while the model scores one batch,
the workers prepare the next ones (`prefetch_factor` batches each), so end to end runs at the model's rate
whenever decoding keeps up. Batches cross as uint8 and are normalized here (`uint8_transfer.py`). A file that cannot be read (or is smaller than `min_size`) gets its message
in `error` and an empty `p_fake`; it never stops the run.

`batch_size=None` and `num_workers=None` pick what `bench` measured fastest for the detector's backend
(`Backend.preferred_batch`, docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, default_collate

from deepfake_lightning.data.images import BadImageError, load_rgb
from deepfake_lightning.inference.detector import BaseDetector, ImagePreparer, label_of
from deepfake_lightning.inference.uint8_transfer import Uint8Transfer

COLUMNS = ("path", "p_fake", "label", "error")
FACE_COLUMN = "face"
MAX_AUTO_WORKERS = 4  # LFW-size JPEGs decode + resize at ~1600 img/s per core: 4 workers feed any CPU model


class FileDataset(Dataset):
    """`{"index", "path", "inputs", "face"}` per readable file, `{"index", "path", "error"}` otherwise."""

    def __init__(self, paths: Sequence[str | Path], preparer: ImagePreparer, max_pixels: int) -> None:
        self.paths = [str(p) for p in paths]
        self.preparer = preparer
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        try:
            inputs, face = self.preparer(load_rgb(path, max_pixels=self.max_pixels), path)
        except BadImageError as err:
            return {"index": index, "path": path, "error": str(err)}
        except Exception as err:  # one odd file (e.g. a transform failing on it) must not abort the batch
            return {"index": index, "path": path, "error": f"{path}: {err.__class__.__name__}: {err}"}
        return {"index": index, "path": path, "inputs": inputs, "face": face}


def collate_prepared(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Every item in order, without its tensors, and the readable ones stacked (one tensor per preprocessing).

    The per-image tensors are dropped from `items` so each batch crosses from worker to main process as one
    shared-memory block per preprocessing, not one block per image as well. `default_collate` stacks straight
    into shared memory in a worker (`stack_inputs` would stack, then copy the batch there to send it).
    """
    good = [item.pop("inputs") for item in items if "error" not in item]
    inputs = [default_collate(list(column)) for column in zip(*good, strict=True)] if good else None
    return {"items": items, "inputs": inputs}


def auto_batch_size(detector: BaseDetector) -> int:
    """The batch each backend was fastest at in `bench`; for an ensemble, the largest of its members'."""
    members = getattr(detector, "members", None) or [detector]
    return max(int(getattr(member.backend, "preferred_batch", 32)) for member in members)


def auto_num_workers() -> int:
    """One decoding worker per core, at most `MAX_AUTO_WORKERS` (the model needs the cores too)."""
    return max(1, min(MAX_AUTO_WORKERS, os.cpu_count() or 1))


def loader_sizes(detector: BaseDetector, batch_size: int | None, num_workers: int | None) -> tuple[int, int]:
    """(batch_size, num_workers) with None replaced by the measured defaults."""
    return (
        auto_batch_size(detector) if batch_size is None else batch_size,
        auto_num_workers() if num_workers is None else num_workers,
    )


def file_loader(
    transfer: Uint8Transfer, paths: Sequence[str | Path], batch_size: int, num_workers: int
) -> DataLoader:
    """The DataLoader `predict_files` and the distributed job both read: uint8 batches, input order."""
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
    """One row per item of a collated batch, in order: `{"index", "path", "p_fake", "label", "error", "face"}`."""
    inputs = batch["inputs"]
    p_fake = detector.score(transfer.normalize(inputs)).p_fake if inputs is not None else np.empty(0)
    rows = []
    good = 0
    for item in batch["items"]:
        row = {"index": item["index"], "path": item["path"], "p_fake": None, "label": None, "face": None}
        if "error" in item:
            rows.append(row | {"error": item["error"]})
            continue
        score = float(p_fake[good])
        good += 1
        label = label_of(score, detector.threshold)
        rows.append(row | {"p_fake": score, "label": label, "error": "", "face": item["face"]})
    return rows


@contextmanager
def progress_bar(total: int, enabled: bool, description: str = "predicting") -> Iterator[Any]:
    """A rich progress bar with `advance(n)`, or a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
) -> Iterator[dict[str, Any]]:
    """Yield `{"index", "path", "p_fake", "label", "error", "face"}` per file, in input order.

    None picks `auto_batch_size` / `auto_num_workers`; `num_workers=0` decodes in this process.
    """
    batch_size, num_workers = loader_sizes(detector, batch_size, num_workers)
    transfer = Uint8Transfer(detector)
    loader = file_loader(transfer, paths, batch_size, num_workers)
    with progress_bar(len(paths), progress) as advance:
        for batch in loader:
            yield from score_batch(detector, transfer, batch)
            advance(len(batch["items"]))
