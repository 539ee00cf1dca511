"""The service's middleware, in the order a request passes through it: one list, outermost first.

Each layer answers what it refuses itself, so every layer outside it dresses that answer too: CORS headers go on a
413 or a 401 as on a 200, and a server fault is a JSON 500 with the same headers. A new layer (metrics, tracing)
is one more `Middleware(...)` line here: outside `ServerFault` to see every status, 500 included, as the
metrics layer (`metrics.py`) is.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from deepfake_lightning.inference.asgi import HttpMiddleware
from deepfake_lightning.inference.disconnect import CancelOnDisconnect
from deepfake_lightning.inference.metrics import RequestMetrics, ServiceMetrics
from deepfake_lightning.inference.request_limits import RequestLimitsMiddleware, send_json
from deepfake_lightning.inference.response_headers import SecurityHeaders
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.inference.upload_guard import UploadGuard

log = logging.getLogger(__name__)


class ServerFault(HttpMiddleware):
    """Any exception a handler lets through: logged, answered as JSON 500 (inside CORS, unlike Starlette's
    `ServerErrorMiddleware`, which sits outside every user middleware and answers in plain text)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as err:
            log.exception("unhandled error on %s", scope["path"])
            if started:
                raise
            await send_json(send, 500, f"internal error ({err.__class__.__name__})")


def install_middleware(
    app: FastAPI, settings: ServiceSettings, metrics: ServiceMetrics | None = None
) -> None:
    """Outermost first: the metrics (every request and the status it got), CORS (when origins are set), the
    security headers, server faults, the checks on the request head (key first, so a stranger learns nothing
    else), then the body limits (and the connection closed after any answer that left the body unread)."""
    stack = [Middleware(RequestMetrics, metrics=metrics)] if metrics is not None else []
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["X-API-Key", "Content-Type"],
            )
        )
    stack += [
        Middleware(SecurityHeaders),
        Middleware(ServerFault),
        Middleware(
            UploadGuard,
            upload_paths=list(settings.body_limits()),
            api_key=settings.api_key,
            allowed_hosts=settings.allowed_hosts,
            protected=("/v1/",) if settings.metrics_public else ("/v1/", "/metrics"),
        ),
        Middleware(
            RequestLimitsMiddleware, limits=settings.body_limits(), body_timeout_s=settings.body_timeout_s
        ),
        Middleware(CancelOnDisconnect),
    ]
    app.user_middleware[:0] = stack
