"""Work a request started stops when its client goes away.

uvicorn does not cancel a request whose client disconnects: the handler runs to its end and its answer is
dropped. A hostile client can then start expensive work (a batch of large images, a long video) and leave,
over and over. This middleware runs the app in a task of its own; once the request body has arrived it listens
for `http.disconnect` and, if the client leaves before the answer is complete, sets the request's stop event and
cancels the task. Awaits end at once: a decode waiting for the pixel budget, images waiting for a batch. Work
already inside a worker thread cannot be interrupted from outside, so the loops that run there (video frames,
the files of a batch) check `stop_event()` between steps; a single image decode is bounded by the decode limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from contextvars import ContextVar

from starlette.types import Message, Receive, Scope, Send

from deepfake_lightning.inference.asgi import HttpMiddleware
from deepfake_lightning.inference.request_limits import has_body

log = logging.getLogger(__name__)
_STOP: ContextVar[threading.Event | None] = ContextVar("request_stop", default=None)


def stop_event() -> threading.Event:
    """The current request's stop event (a fresh, never-set one outside a request). Worker threads started with
    `run_in_threadpool` see their request's: contextvars are copied into them."""
    return _STOP.get() or threading.Event()


class CancelOnDisconnect(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        stop = threading.Event()
        _STOP.set(stop)
        answered = asyncio.Event()
        body_in = asyncio.Event()
        if not has_body(scope):
            body_in.set()

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_in.set()
            return message

        async def tracked_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered.set()

        app = asyncio.ensure_future(self.app(scope, tracked_receive, tracked_send))
        watcher = asyncio.ensure_future(self._watch(receive, body_in, answered, stop, app))
        try:
            await app
        except asyncio.CancelledError:
            if not stop.is_set():
                raise  # cancelled from outside (server shutdown): not ours to swallow
            log.info("%s %s: client disconnected; its work was stopped", scope["method"], scope["path"])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    @staticmethod
    async def _watch(
        receive: Receive,
        body_in: asyncio.Event,
        answered: asyncio.Event,
        stop: threading.Event,
        app: asyncio.Future,
    ) -> None:
        await body_in.wait()
        while not answered.is_set():
            message = await receive()
            if message["type"] == "http.disconnect" and not answered.is_set():
                stop.set()
                app.cancel()
                return
