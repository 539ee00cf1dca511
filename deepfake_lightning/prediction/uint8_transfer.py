"""DataLoader workers send uint8 crops; the main process normalizes each batch through a lookup table.

Why: on 2 000 LFW JPEGs (224 px, batch 8, one worker; process CPU time of worker and main process), sending
normalized float32 tensors cost 1.2-1.6 ms per image in the worker and 0.3 ms in the main process: four bytes
per value through shared memory. Sending the uint8 crop and normalizing in the main process cost 0.7 ms in the
worker and 0.5 ms in the main process with torch arithmetic, less with this table. On a 2-core machine every
millisecond spent outside the model is taken from the model (docs/inference.md, *Speed*).

The table is read off the model's own eval transform (`build_eval_transform`) applied to a ramp image, so the
values are bit-identical to what `Detector.predict` feeds the model.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.inference.detector import BaseDetector, ImagePreparer

LEVELS = 256


def column_preprocessings(detector: BaseDetector) -> list[dict[str, Any]]:
    """The preprocessing of each column the detector's preparer produces, in its order (an ensemble: the column
    `input_of` says each member reads)."""
    members = getattr(detector, "members", None)
    if members is None:
        return [dict(detector.bundle.preprocessing)]
    found: dict[int, dict[str, Any]] = {}
    for member, column in zip(members, detector.input_of, strict=True):
        found.setdefault(column, dict(member.bundle.preprocessing))
    return [found[column] for column in sorted(found)]


def normalize_table(preprocessing: dict[str, Any]) -> np.ndarray:
    """`table[c, v]`: the float the eval transform gives channel c of a pixel of value v (3 x 256, float32)."""
    size = max(16, int(preprocessing["image_size"]))  # >= 16 x 16 pixels: every level appears
    ramp = np.repeat((np.arange(size * size) % LEVELS).astype(np.uint8).reshape(size, size, 1), 3, axis=2)
    plain = {**preprocessing, "image_size": size, "reencode_jpeg_quality": None}  # no JPEG round trip
    out = build_eval_transform(**plain)(ramp).numpy().reshape(3, -1)
    return np.ascontiguousarray(out[:, :LEVELS], dtype=np.float32)


class Uint8Transfer:
    """`preparer`: the detector's preparation minus normalization (uint8 CHW); `normalize`: the rest, per batch."""

    def __init__(self, detector: BaseDetector) -> None:
        columns = column_preprocessings(detector)
        base = detector.preparer
        transforms = [build_eval_transform(**{**p, "normalize": None}) for p in columns]
        self.preparer = ImagePreparer(transforms, base.min_size, base.pipelines)
        self.max_pixels = detector.max_pixels
        self.tables = [normalize_table(p) for p in columns]

    def normalize(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        return [_lookup(table, batch) for table, batch in zip(self.tables, batches, strict=True)]


def _lookup(table: np.ndarray, batch: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W uint8 -> float32 through `table`; cv2.LUT per plane (single-threaded, ~1 ns per value)."""
    pixels = batch.numpy()
    out = np.empty(pixels.shape, np.float32)
    for b in range(pixels.shape[0]):
        for c in range(pixels.shape[1]):
            cv2.LUT(pixels[b, c], table[c], dst=out[b, c])
    return torch.from_numpy(out)
