"""Dynamic batching: images from concurrent requests are scored together, one model call per batch.

Why a small asyncio queue inside the FastAPI app and not LitServe (0.2.19, read and evaluated; docs/inference.md has
the reasons in full): LitServe runs the model in separate worker processes fed through a multiprocessing
queue, calls `decode_request` one request at a time inside that model worker (so image decoding is not
overlapped with scoring), parses multipart forms itself after lifting Starlette's spool limit for the whole
process (`MultiPartParser.max_file_size = sys.maxsize` at import), and owns the uvicorn processes, the routes and
the host check. Our limits (per-path byte-stream limit, body deadline, JSON errors naming the file), the page,
the batch and video endpoints and the constant-time API key would all have to be rebuilt around it, on a
2-core CPU where its extra processes compete with the model for the same cores.

Here decoding and preprocessing run in the request's worker thread (many at once; PIL and OpenCV release the
GIL), and one model thread takes whatever is queued: up to `max_batch_size` images, waiting at most
`max_wait_ms` after the oldest one arrived. Under load the queue fills while the model is busy, so batches are
full without any waiting; a lone request waits `max_wait_ms` at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.prediction.scoring import Scored, score_prepared

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Job:
    tensors: tuple[torch.Tensor, ...]
    attention: bool
    future: asyncio.Future
    arrived: float = field(default=0.0)


class DynamicBatcher:
    """`await batcher.score(tensors)` from any number of request handlers; one model thread scores them."""

    def __init__(self, detector: BaseDetector, max_batch_size: int = 16, max_wait_ms: float = 5.0) -> None:
        self.detector = detector
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.batch_sizes: list[int] = []  # the size of every batch scored (last 10,000): tests and /v1/stats
        self.on_batch: Callable[[int], None] | None = None  # told each batch's size (the service's metrics)
        self._queue: asyncio.Queue[_Job] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None

    def _ensure_worker(self) -> asyncio.Queue[_Job]:
        """Start the worker in the running loop (again if the loop changed: each TestClient call has its own)."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop or self._worker is None or self._worker.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue), name="batcher")
        return self._queue

    async def score(self, tensors: tuple[torch.Tensor, ...], attention: bool = False) -> Scored:
        queue = self._ensure_worker()
        loop = asyncio.get_running_loop()
        job = _Job(tensors, attention, loop.create_future(), loop.time())
        queue.put_nowait(job)
        return await job.future

    async def run_on_model_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Anything else that uses the model (Grad-CAM) runs on the same thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, fn, *args)

    async def _collect(self, queue: asyncio.Queue[_Job]) -> list[_Job]:
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = batch[0].arrived + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [job for job in batch if not job.future.done()]  # a client that went away is not scored

    async def _run(self, queue: asyncio.Queue[_Job]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.model_thread, self._score_batch, batch)
            except Exception as err:  # a model fault fails this batch's requests (500), not the worker
                log.exception("scoring a batch of %d failed", len(batch))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            self.batch_sizes = [*self.batch_sizes[-9999:], len(batch)]
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)

    def _score_batch(self, batch: Sequence[_Job]) -> list[Scored]:
        results = score_prepared(
            self.detector, [job.tensors for job in batch], attention=any(job.attention for job in batch)
        )
        for job, result in zip(batch, results, strict=True):
            if not job.attention:
                result.attention = None
        return results
