"""What uvicorn does not bound on a connection: the time to send a request head, and idle sockets under load.

uvicorn's own limits, used as they are (`ServerSettings`, passed by `deepfake_lightning.serve`):
- `limit_concurrency`: a request that arrives while that many connections or requests exist gets 503;
- `timeout_keep_alive`: a connection idle after a response is closed after this;
- `h11_max_incomplete_event_size` (`max_header_bytes`): a request head larger than this is a 400.

What they leave open, measured against uvicorn 0.55 (h11): no timer runs on a new connection until its first
response, and the keep-alive timer stops at the first byte of the next request. An idle socket, or one sending
a header line every 3 s, was still open after 95 s; 3,000 idle sockets were all held until the process ran out of
file descriptors, and idle sockets count towards `limit_concurrency`, so a few hundred of them would have turned
every real request into a 503. This protocol (uvicorn's h11 one, subclassed) adds:

- **a header deadline**: a connection must deliver a complete request head within `header_timeout_s` of opening,
  and of each response on a kept-alive connection; else it is closed (nginx's `client_header_timeout`);
- **room for a new connection**: when the open connections reach `limit_concurrency`, the one that has waited
  longest without a request head is closed. Idle sockets can then never fill the server, whatever their number,
  and a client that sends its request at once is never the one closed. Connections busy with a request are
  never touched: when they alone fill the server, new requests get uvicorn's 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class GuardedH11Protocol(H11Protocol):
    header_timeout_s: float = 10.0  # set by `guarded_protocol`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since: float | None = None  # loop time since the connection waits for a request head
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.waiting_since is not None and self.conn.their_state is not h11.IDLE:
            self._head_arrived()  # h11 parsed a whole request head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()  # kept alive: the next head has the same deadline

    def _await_head(self) -> None:
        self._head_arrived()
        self.waiting_since = self.loop.time()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_late)

    def _head_arrived(self) -> None:
        self.waiting_since = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.waiting_since is not None and not self.transport.is_closing():
            log.info(
                "closing %s: no request head within header_timeout_s=%g", self.client, self.header_timeout_s
            )
            self.transport.close()

    def _make_room(self) -> None:
        limit = self.limit_concurrency
        if limit is None:
            return
        open_ = [c for c in self.connections if not c.transport.is_closing()]
        excess = len(open_) - (limit - 1)  # keep one place for this connection's request
        if excess <= 0:
            return
        idle = sorted(
            (c for c in open_ if c is not self and getattr(c, "waiting_since", None) is not None),
            key=lambda c: c.waiting_since,
        )
        for connection in idle[:excess]:
            connection.transport.close()


def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class to pass as uvicorn's `http=`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})
