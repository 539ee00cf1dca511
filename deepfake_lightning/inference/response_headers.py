"""Headers every answer carries, the page's and the API's alike, refusals and faults included.

- `Content-Security-Policy`: the page loads its own script and style only (no inline code, no other origin),
  talks to its own origin only, shows images it received as `data:` URLs, and may not be framed;
- `X-Frame-Options: DENY`: the same for browsers without CSP level 2 (no clickjacking of the API-key field);
- `X-Content-Type-Options: nosniff`: an answer is only ever what its `Content-Type` says;
- `Referrer-Policy: no-referrer`: the page's address (and the server's) is not sent to anyone.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from deepfake_lightning.inference.asgi import HttpMiddleware

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def dressed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, dressed)
