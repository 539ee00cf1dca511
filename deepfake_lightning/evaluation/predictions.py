"""Per-image prediction CSVs (``path,label,logit,p_fake`` and any carried columns; label 1 = fake).

Keeping raw logits next to p_fake lets any report be recomputed -- re-calibrated, re-thresholded,
bootstrapped -- without re-running the model. A column carried from the data (a labels-CSV column such as
``video``, through `DeepfakeDataModule.labels_csv_column`, or ``source`` under ``data=multi``) follows the four,
so group-level and per-source scores can be recomputed from the file too.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.metrics import to_numpy

PREDICTION_COLUMNS = ("path", "label", "logit", "p_fake")


def write_predictions_csv(
    path: str | Path,
    paths: Sequence[str],
    labels: Any,
    logits: Any,
    p_fake: Any,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write one row per image; floats use ``repr`` so a read-back is bit-exact. `columns`: name -> one value
    per image, written after the four."""
    y = to_numpy(labels, dtype=np.int64)
    z = to_numpy(logits)
    p = to_numpy(p_fake)
    columns = dict(columns or {})
    clash = set(columns) & set(PREDICTION_COLUMNS)
    if clash:
        raise ValueError(
            f"write_predictions_csv: carried column(s) {sorted(clash)} clash with the fixed ones"
        )
    lengths = {"paths": len(paths), "labels": y.size, "logits": z.size, "p_fake": p.size}
    lengths.update({name: len(values) for name, values in columns.items()})
    if len(set(lengths.values())) != 1:
        raise ValueError(f"write_predictions_csv: all columns must have the same length, got {lengths}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # surrogateescape: a file name that is not valid UTF-8 is written back as its original bytes
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.writer(f)
        writer.writerow([*PREDICTION_COLUMNS, *columns])
        carried = list(zip(*columns.values(), strict=True)) if columns else [()] * len(paths)
        for image, label, logit, prob, extra in zip(
            paths, y.tolist(), z.tolist(), p.tolist(), carried, strict=True
        ):
            writer.writerow([str(image), label, repr(logit), repr(prob), *extra])
    return path


def read_predictions_csv(path: str | Path) -> dict[str, Any]:
    """``{"path": list[str], "label": int64 array, "logit": float64 array, "p_fake": float64 array}`` and each
    carried column as a list of strings."""
    with Path(path).open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        missing = set(PREDICTION_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path}: missing prediction columns {sorted(missing)}; expected {list(PREDICTION_COLUMNS)}"
            )
        rows = list(reader)
        carried = [name for name in reader.fieldnames or () if name not in PREDICTION_COLUMNS]
    return {
        **{name: [r[name] for r in rows] for name in carried},
        "path": [r["path"] for r in rows],
        "label": np.array([int(r["label"]) for r in rows], dtype=np.int64),
        "logit": np.array([float(r["logit"]) for r in rows], dtype=np.float64),
        "p_fake": np.array([float(r["p_fake"]) for r in rows], dtype=np.float64),
    }
