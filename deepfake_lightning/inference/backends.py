"""Runtimes that map a normalized Bx3xHxW batch to raw logits (and the attention map): PyTorch or ONNX Runtime.

Both return numpy so the calibration, thresholding and output code above them is one code path.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from deepfake_lightning.bundle import BundleError
from deepfake_lightning.inference.ort_sessions import PerCoreSessions, session_options
from deepfake_lightning.utils.device import resolve_device

BACKENDS = ("auto", "torch", "onnx")
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "attention")
# The batch each runtime was fastest at in `bench` (docs/benchmarks.md, 224 px, MobileNetV2): on a CPU,
# small batches keep activations in cache. Used by `predict` and the distributed job when batch_size=0.
TORCH_CPU_BATCH = 16  # folded BatchNorm + channels-last: 279 / 195 / 343 / 154 img/s at 4 / 8 / 16 / 32
ONNX_BATCH = 8  # one session on every core: 368 / 373 / 359 / 355 img/s at 4 / 8 / 16 / 32
# one session per core: model alone, fp32 best at 4 per session, int8 at 2-8 (within 1 %); end to end in
# `predict` (2 000 LFW JPEGs, 2 cores), 8 per session gave 0.85 of the model-only rate for int8, 4 gave 0.81
ONNX_BATCH_PER_SESSION = 8
GPU_BATCH = 64


class Backend(Protocol):
    name: str
    has_attention: bool
    preferred_batch: int

    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]: ...


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every Conv2d -> BatchNorm2d pair of a Sequential into one Conv2d (eval-mode arithmetic, in place).

    In eval mode BatchNorm is an extra pass over every activation (~40% of MobileNetV2's CPU time); folded,
    eager PyTorch does what ONNX export does anyway.
    """
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            # exact types: timm's BatchNormAct2d subclasses BatchNorm2d but also applies an activation
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d:
                module[i] = fuse_conv_bn_eval(conv, norm)
                module[i + 1] = nn.Identity()
    return module


class TorchBackend:
    """The plain `DeepfakeDetector` in eval mode; the attention map is read from `net.attention.last_map`.

    `optimize` runs a copy with BatchNorm folded into the convolutions and, on the CPU, channels-last memory
    (oneDNN's fast layout): ~3x the images/s of the training-time graph, same outputs up to float rounding.
    """

    name = "torch"

    def __init__(self, net: nn.Module, device: str = "cpu", optimize: bool = True) -> None:
        self.device = resolve_device(device)
        net = net.eval()
        self.memory_format = torch.contiguous_format
        if optimize:
            net = fold_batchnorm(copy.deepcopy(net))
            if self.device.type == "cpu":
                self.memory_format = torch.channels_last
        self.net = net.to(self.device, memory_format=self.memory_format)
        attention = getattr(net, "attention", None)
        self.has_attention = bool(attention is not None and getattr(attention, "enabled", False))
        self.preferred_batch = GPU_BATCH if self.device.type == "cuda" else TORCH_CPU_BATCH
        self.replicas: list[nn.Module] = [self.net]
        self._pool: ThreadPoolExecutor | None = None

    def per_core(self, n: int = 0) -> TorchBackend:
        """On a CPU, score a batch as `n` slices (0: one per core), each on its own copy of the network in a
        thread with one intra-op thread, like ONNX's `PerCoreSessions`; `n=1` undoes it. Returns self.

        MobileNetV2 is ~150 small operators: splitting each over both cores costs a synchronisation per
        operator, which a core busy with request decoding turns into a wait (`serve` under load). A batch of
        one image still runs on the calling thread with every core. Each slice has its own copy of the
        network, so the attention map read after `forward` is that slice's.
        """
        n = n if n > 0 else (os.cpu_count() or 1)
        if self.device.type != "cpu":
            n = 1
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.replicas = [self.net, *(copy.deepcopy(self.net) for _ in range(n - 1))]
        if n > 1:  # torch.set_num_threads is per thread with OpenMP: the caller keeps its own count
            self._pool = ThreadPoolExecutor(
                n, thread_name_prefix="torch_core", initializer=torch.set_num_threads, initargs=(1,)
            )
        return self

    @torch.inference_mode()
    def _forward(self, net: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        logits = net(batch).float().reshape(-1).cpu()
        attention = net.attention.last_map if self.has_attention else None
        return logits, (attention.float().cpu().numpy() if attention is not None else None)

    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        slices = batch.tensor_split(min(len(self.replicas), len(batch)))
        if self._pool is None or len(slices) == 1:
            logits, amap = self._forward(self.net, batch)
        else:
            jobs = [
                self._pool.submit(self._forward, net, part.contiguous(memory_format=self.memory_format))
                for net, part in zip(self.replicas, slices, strict=False)
            ]
            parts = [job.result() for job in jobs]
            logits = torch.cat([p[0] for p in parts])
            maps = [p[1] for p in parts]
            amap = np.concatenate(maps) if all(m is not None for m in maps) else None  # type: ignore[arg-type]
        return logits.numpy().astype(np.float64), amap


class OnnxBackend:
    """An exported `.onnx` through ONNX Runtime on the CPU (CUDA when the GPU build is installed and asked for)."""

    name = "onnx"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0, sessions: int = 1) -> None:
        """`sessions=1`: one session on `threads` cores; 0 (every core) or N on a CPU: `PerCoreSessions`."""
        import onnxruntime as ort  # lazy: optional extra [export]: ONNX Runtime is installed only with it

        target = resolve_device(device, check_available=False)  # ONNX Runtime checks its own providers
        providers: list[Any] = ["CPUExecutionProvider"]
        if target.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            # device_id: each rank of a distributed job runs on its own GPU (cuda:LOCAL_RANK)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": target.index or 0}))
        try:
            if sessions != 1 and providers == ["CPUExecutionProvider"]:
                self.session: Any = PerCoreSessions(path, sessions, providers)
            else:
                self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as err:  # InvalidProtobuf, InvalidGraph, NoSuchFile...
            raise BundleError(
                f"{path}: ONNX Runtime cannot load it ({err.__class__.__name__}: {err})"
            ) from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.has_attention = OUTPUT_NAMES[1] in self.outputs
        self.device = target if len(providers) > 1 else torch.device("cpu")
        if isinstance(self.session, PerCoreSessions):
            self.preferred_batch = ONNX_BATCH_PER_SESSION * self.session.n
        else:
            self.preferred_batch = GPU_BATCH if len(providers) > 1 else ONNX_BATCH

    def __call__(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        feed = {INPUT_NAME: np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)}
        results = dict(zip(self.outputs, self.session.run(None, feed), strict=True))
        logits = np.asarray(results[OUTPUT_NAMES[0]], dtype=np.float64).reshape(-1)
        return logits, results.get(OUTPUT_NAMES[1])
