"""Score many image files with DataLoader workers; every file yields exactly one row, errors included.

Decoding and preprocessing run in the workers, the model in the main process. A file that cannot be read
(or is smaller than `min_size`) gets its message in `error` and an empty `p_fake`; it never stops the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from deepfake_lightning.data.images import BadImageError, load_rgb
from deepfake_lightning.inference.detector import BaseDetector, ImagePreparer, label_of, stack_inputs

COLUMNS = ("path", "p_fake", "label", "error")
FACE_COLUMN = "face"


class FileDataset(Dataset):
    """`{"path", "inputs", "face"}` per readable file, `{"path", "error"}` otherwise."""

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
            return {"path": path, "error": str(err)}
        except Exception as err:  # one odd file (e.g. a transform failing on it) must not abort the batch
            return {"path": path, "error": f"{path}: {err.__class__.__name__}: {err}"}
        return {"path": path, "inputs": inputs, "face": face}


def collate_prepared(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Keep every item (in order) and stack the readable ones, one tensor per distinct preprocessing."""
    good = [item["inputs"] for item in items if "error" not in item]
    inputs = stack_inputs(good) if good else None
    return {"items": items, "inputs": inputs}


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
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield `{"path", "p_fake", "label", "error", "face"}` per file, in input order."""
    dataset = FileDataset(paths, detector.preparer, detector.max_pixels)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_prepared, shuffle=False
    )
    with progress_bar(len(dataset), progress) as advance:
        for batch in loader:
            scores = detector.score(batch["inputs"]) if batch["inputs"] is not None else None
            good = 0
            for item in batch["items"]:
                if "error" in item:
                    yield {
                        "path": item["path"],
                        "p_fake": None,
                        "label": None,
                        "error": item["error"],
                        "face": None,
                    }
                    continue
                assert scores is not None
                p_fake = float(scores.p_fake[good])
                good += 1
                label = label_of(p_fake, detector.threshold)
                yield {
                    "path": item["path"],
                    "p_fake": p_fake,
                    "label": label,
                    "error": "",
                    "face": item["face"],
                }
            advance(len(batch["items"]))
