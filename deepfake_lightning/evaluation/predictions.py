"""Per-image prediction CSVs (``path,label,logit,p_fake``; label 1 = fake).

Keeping raw logits next to p_fake lets any report be recomputed -- re-calibrated, re-thresholded,
bootstrapped -- without re-running the model.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.metrics import to_numpy

PREDICTION_COLUMNS = ("path", "label", "logit", "p_fake")


def write_predictions_csv(
    path: str | Path, paths: Sequence[str], labels: Any, logits: Any, p_fake: Any
) -> Path:
    """Write one row per image; floats use ``repr`` so a read-back is bit-exact."""
    y = to_numpy(labels, dtype=np.int64)
    z = to_numpy(logits)
    p = to_numpy(p_fake)
    lengths = {"paths": len(paths), "labels": y.size, "logits": z.size, "p_fake": p.size}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"write_predictions_csv: all columns must have the same length, got {lengths}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # surrogateescape: a file name that is not valid UTF-8 is written back as its original bytes
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.writer(f)
        writer.writerow(PREDICTION_COLUMNS)
        for image, label, logit, prob in zip(paths, y.tolist(), z.tolist(), p.tolist(), strict=True):
            writer.writerow([str(image), label, repr(logit), repr(prob)])
    return path


def read_predictions_csv(path: str | Path) -> dict[str, Any]:
    """``{"path": list[str], "label": int64 array, "logit": float64 array, "p_fake": float64 array}``."""
    with Path(path).open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        missing = set(PREDICTION_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path}: missing prediction columns {sorted(missing)}; expected {list(PREDICTION_COLUMNS)}"
            )
        rows = list(reader)
    return {
        "path": [r["path"] for r in rows],
        "label": np.array([int(r["label"]) for r in rows], dtype=np.int64),
        "logit": np.array([float(r["logit"]) for r in rows], dtype=np.float64),
        "p_fake": np.array([float(r["p_fake"]) for r in rows], dtype=np.float64),
    }
