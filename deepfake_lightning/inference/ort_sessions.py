"""ONNX Runtime sessions for throughput on CPU: one single-thread session per core, each running a slice.

Why: MobileNetV2 is hundreds of small depthwise and 1x1 operators. Splitting each operator across cores
(intra-op threads) adds a synchronisation per operator; on the 2-core machine two threads gave 1.4-1.5x one
thread, while two independent single-thread sessions on halves of the batch gave 1.8-1.9x (docs/benchmarks.md).
A batch of one image still runs on one core, so use this for batches, not for single-image latency.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def session_options(threads: int) -> Any:
    """Every graph optimisation; `threads` intra-op threads (0 = ORT's default, every core)."""
    import onnxruntime as ort  # lazy: optional extra [export]: ONNX Runtime is installed only with it

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


class PerCoreSessions:
    """`run(feed)` like `InferenceSession.run(None, feed)`, with the batch split over `n` sessions."""

    def __init__(self, path: str | Path, n: int = 0, providers: list[str] | None = None) -> None:
        import onnxruntime as ort  # lazy: optional extra [export]: ONNX Runtime is installed only with it

        self.n = n if n > 0 else (os.cpu_count() or 1)
        self.sessions = [
            ort.InferenceSession(
                str(path), session_options(1), providers=providers or ["CPUExecutionProvider"]
            )
            for _ in range(self.n)
        ]
        self._pool = ThreadPoolExecutor(self.n) if self.n > 1 else None  # ORT releases the GIL in run()

    def get_outputs(self) -> list[Any]:
        return self.sessions[0].get_outputs()

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (name, batch), *rest = feed.items()
        if rest:
            raise ValueError(f"PerCoreSessions splits one batched input, got {sorted(feed)}")
        slices = [part for part in np.array_split(batch, min(self.n, len(batch))) if len(part)]
        if self._pool is None or len(slices) == 1:
            return self.sessions[0].run(output_names, {name: batch})
        jobs = [
            self._pool.submit(session.run, output_names, {name: np.ascontiguousarray(part)})
            for session, part in zip(self.sessions, slices, strict=False)
        ]
        results = [job.result() for job in jobs]
        return [np.concatenate(parts) for parts in zip(*results, strict=True)]
