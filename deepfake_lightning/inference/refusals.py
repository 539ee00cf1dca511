"""Which check refused a request: noted on the ASGI scope by the layer that refused it, read by the metrics layer.

A status code alone does not say which limit a client met: a 413 may be the body size (`request_limits.py`) or
the decoded pixels (the handlers), a 415 the upload form (`upload_guard.py`) or the video container, a 400 the
Host header or a malformed form. The guards note their reason here; any other refusal is named after its status
(`reason_of`). The note lives in the request's own `scope["state"]`, so it never outlives the request.
"""

from __future__ import annotations

from starlette.types import Scope

NOTE = "refused_by"
# what a refusal is called when no guard noted one (the handlers' own 4xx, the router's 404/405)
BY_STATUS = {
    400: "bad_request",
    401: "api_key",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
}


def note_refusal(scope: Scope, reason: str) -> None:
    scope.setdefault("state", {})[NOTE] = reason


def reason_of(scope: Scope, status: int) -> str:
    """The reason a guard noted, else the status's name (`http_NNN` for one without a name)."""
    return scope.get("state", {}).get(NOTE) or BY_STATUS.get(status, f"http_{status}")
