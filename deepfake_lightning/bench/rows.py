"""The benchmark's unit of output (one measured configuration) and the timing helpers that fill it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

TASKS = ("data", "index", "stream", "train", "inference", "predict", "recipes", "faces")
ROW_FIELDS = (
    "task",
    "stage",
    "device",
    "backend",
    "precision",
    "batch_size",
    "image_size",
    "workers",
    "threads",
    "throughput_img_s",
    "latency_ms_p50",
    "latency_ms_p99",
    "peak_mem_mb",
    "ratio_to_baseline",
)


@dataclass
class Row:
    """One measured configuration. `backend` containing "baseline" marks the naive reference of its task/stage.

    `workers` counts DataLoader processes (0 = in the main process); `threads` the intra-op threads.
    `latency_ms_*` is per call (a batch of `batch_size`, or one image when it is 1).
    """

    task: str
    stage: str
    device: str
    backend: str
    precision: str
    batch_size: int
    image_size: int
    workers: int
    threads: int
    throughput_img_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    peak_mem_mb: float | None = None
    ratio_to_baseline: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timing:
    """Per-call wall times of a measured loop; `items` images were processed per call."""

    seconds: list[float]
    items: int

    @property
    def throughput(self) -> float:
        total = sum(self.seconds)
        return self.items * len(self.seconds) / total if total > 0 else float("inf")

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.seconds) * 1e3, q))


def time_calls(
    fn: Callable[[], Any], items: int, iters: int, warmup: int = 1, sync: Callable[[], None] | None = None
) -> Timing:
    """Run `fn` `warmup` times untimed, then `iters` times timed (with `sync` for asynchronous devices)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    seconds = []
    for _ in range(max(1, iters)):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        seconds.append(time.perf_counter() - start)
    return Timing(seconds, items)


def time_batches(batches: Iterator[dict[str, Any]], limit: int | None = None) -> Timing:
    """Per-batch wall times of a loader's iterator (the first batch already taken: worker start-up is not
    throughput), over up to `limit` batches; `items` is the mean batch size."""
    seconds, sizes = [], []
    start = time.perf_counter()
    for batch in batches:
        now = time.perf_counter()
        seconds.append(now - start)
        sizes.append(len(batch["image"]))
        start = now
        if limit is not None and len(seconds) >= limit:
            break
    return Timing(seconds or [float("nan")], int(sum(sizes) / len(sizes)) if sizes else 0)


def device_label(device: torch.device) -> str:
    """`cpu` or `cuda:<name>`, so rows from different GPUs never mix."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def sync_for(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


class PeakMemory:
    """Peak memory of one measured block: CUDA allocator peak on a GPU, else the process's resident peak.

    On Linux the resident high-water mark (VmHWM) is reset through /proc/self/clear_refs, so the figure
    belongs to the block; elsewhere it is the process peak so far. DataLoader worker processes are not counted.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _reset_rss_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mb = _rss_peak_mb()


def _reset_rss_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _rss_peak_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource  # lazy: POSIX only: Windows has no resource module

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # pragma: no cover - Windows
        return None


def make_row(
    task: str, stage: str, backend: str, timing: Timing, memory: PeakMemory | None, **fields: Any
) -> Row:
    """A Row from a Timing: throughput in images/s and per-call latency percentiles in ms."""
    p50 = timing.percentile_ms(50)
    row = Row(
        task=task,
        stage=stage,
        backend=backend,
        throughput_img_s=round(timing.throughput, 2),
        latency_ms_p50=round(p50, 3),
        latency_ms_p99=round(timing.percentile_ms(99), 3),
        peak_mem_mb=None if memory is None or memory.peak_mb is None else round(memory.peak_mb, 1),
        **fields,
    )
    if p50 > 0:  # robust to other jobs preempting a few calls: the rate of a typical call
        row.extra["throughput_at_p50_img_s"] = round(timing.items * 1e3 / p50, 2)
    return row
