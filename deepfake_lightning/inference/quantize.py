"""int8 ONNX quantization with ONNX Runtime, and the AUROC it costs measured on labelled images.

Static QDQ (activations calibrated on real images through the model's own eval transform) is the accurate
choice for a CNN; dynamic quantization is the fallback when no calibration folder is given.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lightning.data.images import BadImageError
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.inference.backends import INPUT_NAME, OnnxBackend
from deepfake_lightning.prediction.image_check import decode_checked

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 8


@dataclass
class QuantizedModel:
    path: Path
    summary: dict[str, Any] = field(default_factory=dict)


def _preprocessed(
    paths: Sequence[Path | str], preprocessing: dict[str, Any]
) -> Iterator[tuple[str, torch.Tensor]]:
    """Decode + eval transform each readable file; unreadable ones are logged and left out."""
    transform = build_eval_transform(**preprocessing)
    for path in paths:
        try:
            yield str(path), transform(decode_checked(path))
        except BadImageError as err:
            log.warning("quantization: skipped %s", err)


class _CalibrationReader:
    """onnxruntime `CalibrationDataReader`: batches of preprocessed images, read once."""

    def __init__(self, paths: Sequence[Path], preprocessing: dict[str, Any]) -> None:
        tensors = [t for _, t in _preprocessed(paths, preprocessing)]
        if not tensors:
            raise ValueError("quantize: none of the calibration images could be read")
        self.count = len(tensors)
        batches = [
            torch.stack(tensors[i : i + CALIBRATION_BATCH]) for i in range(0, len(tensors), CALIBRATION_BATCH)
        ]
        self._feeds = iter([{INPUT_NAME: b.numpy()} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - part of the interface, unused by minmax calibration
        raise NotImplementedError


def auroc_on(
    model: Path, samples: Sequence[tuple[str, int]], preprocessing: dict[str, Any]
) -> tuple[float, int]:
    backend = OnnxBackend(model)
    logits, labels = [], []
    items = list(_preprocessed([p for p, _ in samples], preprocessing))
    targets = dict(samples)
    for i in range(0, len(items), 32):
        chunk = items[i : i + 32]
        logits.append(backend(torch.stack([t for _, t in chunk]))[0])
        labels.extend(targets[p] for p, _ in chunk)
    p_fake = 1.0 / (1.0 + np.exp(-np.concatenate(logits)))
    return float(compute_metrics(p_fake, labels, n_bootstrap=0)["auroc"]["value"]), len(labels)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs every tensor (and harmless BatchNorm1d axis notes) on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize(
    prepared: Path,
    output: Path,
    preprocessing: dict[str, Any],
    calibration_images: Sequence[Path] | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    # lazy: optional extra [export]: ONNX Runtime is installed only with it
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if calibration_images:
        reader = _CalibrationReader(calibration_images, preprocessing)
        quantize_static(
            str(prepared),
            str(output),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=bool(options.get("per_channel", True)),
            calibrate_method=CalibrationMethod[options.get("calibrate_method") or "MinMax"],
            nodes_to_exclude=list(options.get("nodes_to_exclude") or []),
            op_types_to_quantize=list(options["op_types"]) if options.get("op_types") else None,
        )
        return {"mode": "static_qdq", "calibration_images": reader.count}
    # ConvInteger (what dynamic quantization makes of Conv) has CPU kernels for uint8 weights only
    quantize_dynamic(str(prepared), str(output), weight_type=QuantType.QUInt8)
    return {"mode": "dynamic", "calibration_images": 0}


def quantize_int8(
    fp32: Path,
    output: Path,
    preprocessing: dict[str, Any],
    calibration_images: Sequence[Path] | None = None,
    eval_samples: Sequence[tuple[str, int]] | None = None,
    options: Mapping[str, Any] | None = None,
) -> QuantizedModel:
    """Quantize `fp32` into `output`; with labelled `eval_samples`, measure AUROC of both.

    `options` (static mode): `per_channel` (default true), `calibrate_method` (MinMax | Entropy | Percentile |
    Distribution), `nodes_to_exclude`, `op_types` (null = every type ONNX Runtime can quantize).
    """
    # lazy: optional extra [export]: ONNX Runtime is installed only with it
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = output.with_name(output.stem + ".pre.onnx")
    with _quiet_root_logger():
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        summary = _quantize(prepared, output, preprocessing, calibration_images, options or {})
    prepared.unlink(missing_ok=True)
    summary["size_bytes_fp32"] = fp32.stat().st_size
    summary["size_bytes_int8"] = output.stat().st_size
    if eval_samples:
        auroc_fp32, n = auroc_on(fp32, eval_samples, preprocessing)
        auroc_int8, _ = auroc_on(output, eval_samples, preprocessing)
        change = auroc_int8 - auroc_fp32
        summary.update(eval_images=n, auroc_fp32=auroc_fp32, auroc_int8=auroc_int8, auroc_change=change)
        log.info("int8 AUROC %.4f vs fp32 %.4f (change %+.4f, n=%d)", auroc_int8, auroc_fp32, change, n)
    return QuantizedModel(output, summary)


def sample_subset(
    samples: Sequence[tuple[str, int]], limit: int | None, seed: int = 0
) -> list[tuple[str, int]]:
    """At most `limit` samples, the same seeded subset every run."""
    samples = list(samples)
    if limit is None or len(samples) <= limit:
        return samples
    return sorted(random.Random(seed).sample(samples, limit))
