"""How many pixels the service decodes at once, over all requests: the bound on its decoding memory.

An image's pixel count is known from its header before it is decoded (`open_bounded`), and decoding it costs
memory in proportion (PIL's RGB buffer at 4 bytes a pixel, then the 3-byte array the model's preprocessing
reads: about 8 bytes a pixel at the peak, 7.7 measured, 0.38 GB for a 49-megapixel PNG of 47 KB). Without a bound, 24 such
uploads at once took a server from 1.2 to 11.1 GB. Each decode here first holds its pixels from
`decode_pixels`; a decode that does not fit waits, in arrival order, until earlier ones finish. So:

- decoding memory stays under about 8 bytes x `decode_pixels` (0.8 GB at the default 100 megapixels), whatever
  the number of requests;
- large decodes run few at a time (two 49-megapixel images at the default), small ones many at a time;
- a request that goes away while it waits is taken out of the queue (the wait is cancelled with it).

The same structure bounds the upload bytes read into memory (`upload_bytes_in_memory`): a request holds its
files' sizes from reading them until its answer (a video until it is on disk).

An asyncio structure, not a thread semaphore: a decode that waits holds no worker thread, so small images keep
being served while large ones queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Budget:
    """A first-come, first-served weighted semaphore, for one event loop: pixels being decoded, or upload bytes
    held in memory (the same reasoning: memory in proportion, waiting instead of failing)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most pixels ever held at once (tests, and /v1/model's figures)
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold `pixels` (at most the whole budget: one item above it runs alone) for the `with` block."""
        pixels = min(max(pixels, 1), self.capacity)
        if not self._waiting and self.in_use + pixels <= self.capacity:
            self._take(pixels)
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((pixels, granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():  # granted as it was cancelled: give it back
                    self._give_back(pixels)
                elif (pixels, granted) in self._waiting:  # else `_wake` already dropped it
                    self._waiting.remove((pixels, granted))
                    self._wake()
                raise
        try:
            yield
        finally:
            self._give_back(pixels)

    def _take(self, pixels: int) -> None:
        self.in_use += pixels
        self.peak = max(self.peak, self.in_use)

    def _give_back(self, pixels: int) -> None:
        self.in_use -= pixels
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self.in_use + self._waiting[0][0] <= self.capacity:
            pixels, granted = self._waiting.popleft()
            if not granted.done():
                self._take(pixels)
                granted.set_result(None)
