"""Checks on the request head, before one byte of the body is read: the Host header (when `allowed_hosts` is set:
DNS rebinding), the API key, and the content type of an upload.

Why not FastAPI dependencies (the key used to be one): FastAPI reads and parses the whole body of a route (Starlette
spools files over 1 MB to disk) before it solves the route's dependencies, and uvicorn answers
`Expect: 100-continue` with `100 Continue` the first time the app asks for the body. A key checked there is
checked after a stranger's 50 MiB have arrived. This middleware answers from the head alone and never calls
`receive`, so uvicorn sends no `100 Continue` and reads no body; `request_limits.py` then closes the connection
(the body was never read, so the connection cannot carry another request).

Route and method need no check here: Starlette's router answers an unknown path (404) or method (405) from the
head, without reading the body. An upload route takes `multipart/form-data` only; anything else is a 415.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from deepfake_lightning.inference.refusals import note_refusal
from deepfake_lightning.inference.request_limits import send_json

KEY_HEADER = b"x-api-key"
Refusal = tuple[int, str, list[tuple[bytes, bytes]]]
REFUSED_BY = {400: "allowed_hosts", 401: "api_key", 415: "content_type"}  # what /metrics counts them as


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (names are lower-case in ASGI)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def presented_key(scope: Scope) -> bytes | None:
    """`X-API-Key`, else the token of `Authorization: Bearer KEY` (what a Prometheus scrape sends, with its
    `authorization` setting: deploy/prometheus.yml)."""
    key = header(scope, KEY_HEADER)
    if key is None:
        scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            key = token.strip()
    return key


def key_matches(given: bytes | None, api_key: str) -> bool:
    """Constant-time comparison, so the time of a refusal tells nothing about the key."""
    return given is not None and hmac.compare_digest(given, api_key.encode())


class UploadGuard:
    """`upload_paths`: the routes that take a form (`ServiceSettings.body_limits`); `protected`: path prefixes that
    need the key when `api_key` is set (`/health` and the page stay open; `/metrics` unless `metrics_public`);
    `allowed_hosts`: the names a Host header may give (any, when empty)."""

    def __init__(
        self,
        app: ASGIApp,
        upload_paths: Sequence[str],
        api_key: str | None,
        allowed_hosts: Sequence[str] = (),
        protected: Sequence[str] = ("/v1/",),
    ) -> None:
        self.app = app
        self.allowed_hosts = frozenset(h.strip("[]").lower() for h in allowed_hosts)
        self.upload_paths = frozenset(upload_paths)
        self.api_key = api_key
        self.protected = tuple(protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refusal := self.refusal(scope)) is not None:
            status, detail, headers = refusal
            if status in REFUSED_BY:  # any other status is named after itself (`refusals.reason_of`)
                note_refusal(scope, REFUSED_BY[status])
            await send_json(send, status, detail, headers)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Refusal | None:
        path = scope["path"]
        if self.allowed_hosts:
            host = (header(scope, b"host") or b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]").lower() not in self.allowed_hosts:
                return (
                    400,
                    f"Host header {host[:100]!r} is not one this server answers to (allowed_hosts)",
                    [],
                )
        if self.api_key is not None and path.startswith(self.protected):
            if not key_matches(presented_key(scope), self.api_key):
                return 401, "missing or invalid X-API-Key header", [(b"www-authenticate", b"X-API-Key")]
        if path in self.upload_paths and scope["method"] == "POST":
            content_type = (header(scope, b"content-type") or b"").decode("latin-1")
            kind, _, parameters = content_type.partition(";")
            if kind.strip().lower() != "multipart/form-data" or "boundary=" not in parameters.lower():
                shown = content_type[:80] or "none"
                return (
                    415,
                    f"{path}: content type {shown!r}; expected multipart/form-data (an upload form)",
                    [],
                )
        return None
