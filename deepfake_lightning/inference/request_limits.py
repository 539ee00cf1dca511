"""Body-size limit and body-read deadline, enforced on the ASGI byte stream before any form parsing.

Why not Starlette's `RequestBodyLimitMiddleware` (FastAPI's `max_body_size`): tried with FastAPI 0.165 /
Starlette 1.10, a `Content-Length` above the limit is answered from inside its `send` with a plain-text
"Content Too Large", which breaks this service's contract (every 4xx is JSON `{"detail": ...}` naming the limit),
and it has no deadline for slow clients. uvicorn's `timeout_keep_alive` only covers idle connections, not a body
trickled at one byte a second. This middleware does both in one pass over `receive`:

- a `Content-Length` above the path's limit is refused before a single body byte is read;
- without one (chunked), bytes are counted as they arrive and the request is refused the moment the count
  passes the limit, so Starlette's multipart parser never holds (or spools to disk) more than the limit;
- the whole body must arrive within `body_timeout_s`, else 408;
- an answer sent before the whole body was read (any status: a 413, 408 or 401, but also a 200 from `/health`
  to a request that came with a body) says `Connection: close`, so uvicorn closes the socket after it instead of
  reading and discarding the rest of the body for as long as the client sends. The kernel answers a client that
  keeps sending with a reset, as nginx does once its lingering time is over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepfake_lightning.inference.refusals import note_refusal
from deepfake_lightning.inference.settings import FORM_OVERHEAD, SMALL_BODY


class BodyRefused(HTTPException):
    """Raised from `receive`: an HTTPException so FastAPI's form parsing passes it on as it is (not as a 400)."""


CLOSE = (b"connection", b"close")


async def send_json(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A refusal in the service's contract (JSON `{"detail": ...}`); the body it answers is never read, so the
    connection is closed after it."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        CLOSE,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def has_body(scope: Scope) -> bool:
    """A request whose head announces a body: a non-zero Content-Length or any Transfer-Encoding (chunked)."""
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestLimitsMiddleware:
    """`limits`: path -> (bytes of payload allowed, name of the setting); any other path gets `SMALL_BODY`."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, tuple[int, str]], body_timeout_s: float) -> None:
        self.app = app
        self.limits = dict(limits)
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nominal, setting = self.limits.get(scope["path"], (SMALL_BODY, "no upload on this path"))
        limit = nominal + (FORM_OVERHEAD if scope["path"] in self.limits else 0)
        too_large = f"request body larger than the limit of {nominal} bytes ({setting}) for {scope['path']}"
        length = _content_length(scope)
        if length is not None and length > limit:
            note_refusal(scope, "body_size")
            await send_json(send, 413, too_large)
            return
        deadline = time.monotonic() + self.body_timeout_s
        received, body_done, started = 0, not has_body(scope), False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later calls only wait for a disconnect: no deadline there
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                raise BodyRefused(
                    408,
                    f"request body not received within body_timeout_s={self.body_timeout_s:g} s "
                    f"({received} bytes arrived)",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    note_refusal(scope, "body_size")
                    raise BodyRefused(413, too_large)
            else:
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_done and CLOSE not in message.get("headers", ()):
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyRefused as err:  # raised outside FastAPI's handlers (e.g. before routing)
            if started:
                raise
            await send_json(send, err.status_code, str(err.detail))
