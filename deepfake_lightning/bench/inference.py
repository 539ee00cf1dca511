"""Inference: batch throughput and single-image latency per backend, and the accuracy cost of each precision.

Each predictor takes a CPU float32 NCHW batch and returns logits on the CPU, so device transfers count (as they
do when serving). The baseline is how per-image speed is usually quoted (the published 0.0046 s/image): eager
PyTorch, fp32, contiguous tensors, one image at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

from deepfake_lightning.bench import onnx_runtime
from deepfake_lightning.bench.models import autocast, precisions_for, prepared
from deepfake_lightning.bench.rows import PeakMemory, Row, device_label, make_row, sync_for, time_calls
from deepfake_lightning.inference.backends import TorchBackend
from deepfake_lightning.models import DeepfakeDetector

log = logging.getLogger(__name__)
Predictor = Callable[[torch.Tensor], np.ndarray]


@dataclass
class Backend:
    name: str
    precision: str
    build: Callable[[], Predictor]
    batched: bool = True  # False: the baseline, measured one image at a time only
    batched_only: bool = False  # True: one image would run on one core, the same as another row


def _torch_predictor(
    net: DeepfakeDetector, device: torch.device, precision: str, channels_last: bool, compile_model: bool
) -> Callable[[], Predictor]:
    def build() -> Predictor:
        model = prepared(net, device, channels_last)
        run = torch.compile(model) if compile_model else model
        memory_format = torch.channels_last if channels_last else torch.contiguous_format

        @torch.inference_mode()
        def predict(batch: torch.Tensor) -> np.ndarray:
            batch = batch.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            with autocast(device, precision):
                return run(batch).float().cpu().numpy()

        return predict

    return build


def _product_torch_predictor(net: DeepfakeDetector, device: torch.device) -> Callable[[], Predictor]:
    """What `predict`/`serve` run for a .ckpt: BatchNorm folded into the convolutions, channels-last."""

    def build() -> Predictor:
        backend = TorchBackend(net, str(device))
        return lambda batch: backend(batch)[0].astype(np.float32)

    return build


def _ort_predictor(
    path: Path, threads: int, device: torch.device, per_core: bool = False
) -> Callable[[], Predictor]:
    def build() -> Predictor:
        session = onnx_runtime.ort_session(path, threads, device, per_core)
        return lambda batch: onnx_runtime.run_session(session, batch.numpy())

    return build


def backends(
    net: DeepfakeDetector, device: torch.device, cfg: Mapping[str, Any], onnx_paths: Mapping[str, Path]
) -> list[Backend]:
    """Every backend this device can run, baseline first."""
    found = [
        Backend("baseline:eager", "fp32", _torch_predictor(net, device, "fp32", False, False), batched=False)
    ]
    found.append(Backend("eager", "fp32", _torch_predictor(net, device, "fp32", False, False)))
    for precision in precisions_for(device, list(cfg["precisions"])):
        found.append(
            Backend("eager+channels_last", precision, _torch_predictor(net, device, precision, True, False))
        )
        if cfg["compile"]:
            found.append(
                Backend(
                    "compile+channels_last", precision, _torch_predictor(net, device, precision, True, True)
                )
            )
    found.append(Backend("eager+channels_last+fold_bn", "fp32", _product_torch_predictor(net, device)))
    threads = torch.get_num_threads()
    providers = onnx_runtime.ort_providers()
    ort_device = (
        device if device.type == "cuda" and "CUDAExecutionProvider" in providers else torch.device("cpu")
    )
    if "fp32" in onnx_paths:
        found.append(
            Backend(
                f"onnxruntime:{ort_device.type}",
                "fp32",
                _ort_predictor(onnx_paths["fp32"], threads, ort_device),
            )
        )
    cpu = torch.device("cpu")
    if "int8" in onnx_paths:  # integer QDQ kernels are a CPU-provider feature
        found.append(Backend("onnxruntime:cpu", "int8", _ort_predictor(onnx_paths["int8"], threads, cpu)))
    if threads > 1:  # one single-thread session per core, each on a slice of the batch
        for precision, path in onnx_paths.items():
            predictor = _ort_predictor(path, threads, cpu, per_core=True)
            found.append(Backend("onnxruntime:cpu:per_core", precision, predictor, batched_only=True))
    return found


def _batch_sizes(cfg: Mapping[str, Any], available: int) -> list[int]:
    """The batched calls to time: `batch_sizes` (small batches stay cache-resident on CPU) and `batch_size`."""
    sizes = {int(size) for size in cfg.get("batch_sizes") or []} | {available}
    return sorted(size for size in sizes if 1 < size <= available)


def _predict_all(predict: Predictor, images: torch.Tensor, batch_size: int) -> np.ndarray:
    return np.concatenate([predict(chunk) for chunk in images.split(batch_size)])


def _accuracy(logits: np.ndarray, reference: np.ndarray, targets: torch.Tensor) -> dict[str, float]:
    """AUROC of this backend and of the fp32 reference on the labelled set, and how far p(fake) moves."""
    p_fake = torch.sigmoid(torch.from_numpy(logits).float())
    p_ref = torch.sigmoid(torch.from_numpy(reference).float())
    auroc = float(binary_auroc(p_fake, targets.long()))
    auroc_ref = float(binary_auroc(p_ref, targets.long()))
    return {
        "auroc": round(auroc, 5),
        "auroc_fp32": round(auroc_ref, 5),
        "auroc_delta": round(auroc - auroc_ref, 5),
        "p_fake_max_abs_diff": round(float((p_fake - p_ref).abs().max()), 5),
        "decision_agreement": round(float(((p_fake > 0.5) == (p_ref > 0.5)).float().mean()), 5),
    }


def bench_inference(
    net: DeepfakeDetector,
    device: torch.device,
    cfg: Mapping[str, Any],
    batch: torch.Tensor,
    labelled: tuple[torch.Tensor, torch.Tensor],
    onnx_paths: Mapping[str, Path],
) -> list[Row]:
    """Rows for each backend at `batch_size` and at 1 image; accuracy extras for fp32-changing backends."""
    image_size = batch.shape[-1]
    sync = sync_for(device)
    images, targets = labelled
    reference = _predict_all(
        _torch_predictor(net, torch.device("cpu"), "fp32", True, False)(), images, cfg["batch_size"]
    )
    rows = []
    for backend in backends(net, device, cfg, onnx_paths):
        log.info("inference %s %s %dpx", backend.name, backend.precision, image_size)
        try:
            predict = backend.build()
            measured = [] if backend.batched_only else [(1, cfg["single_iters"])]
            if backend.batched:
                measured += [(size, cfg["iters"]) for size in _batch_sizes(cfg, len(batch))]
            for batch_size, iters in measured:
                inputs = batch[:batch_size]
                warmup = cfg["warmup"] + (2 if "compile" in backend.name else 0)
                with PeakMemory(device) as memory:
                    timing = time_calls(lambda x=inputs: predict(x), batch_size, iters, warmup, sync)  # noqa: B023
                row = make_row(
                    "inference",
                    "batch" if batch_size > 1 else "single",
                    backend.name,
                    timing,
                    memory,
                    device=device_label(device) if "onnxruntime:cpu" not in backend.name else "cpu",
                    precision=backend.precision,
                    batch_size=batch_size,
                    image_size=image_size,
                    workers=0,
                    threads=torch.get_num_threads(),
                )
                rows.append(row)
            if (
                backend.precision != "fp32"
                or backend.name.startswith("onnxruntime")
                or "fold" in backend.name
            ):
                accuracy = _accuracy(_predict_all(predict, images, cfg["batch_size"]), reference, targets)
                for row in rows[-len(measured) :]:
                    row.extra |= accuracy
        except (
            Exception
        ) as err:  # one backend that cannot run here (no compiler, no provider) is a note, not a crash
            log.warning("inference backend %s/%s failed: %s", backend.name, backend.precision, err)
            rows.append(
                Row(
                    "inference",
                    "batch",
                    device_label(device),
                    backend.name,
                    backend.precision,
                    len(batch),
                    image_size,
                    0,
                    torch.get_num_threads(),
                    0.0,
                    0.0,
                    0.0,
                    extra={"error": f"{err.__class__.__name__}: {str(err)[:300]}"},
                )
            )
    return rows
