"""A minimal keep-alive HTTP/1.1 client for the load test: each request's bytes are built once, then only sent.

Why not httpx here (it stays the load test's `client=httpx` and the tests' client): measured on this 2-core
machine, httpx's async client spent 9-11 ms of CPU per multipart POST (16.7 s of CPU for 1,500 requests), about a
third of the machine at 75 requests/s, taken from the very server being measured on the same cores. This client
writes prebuilt bytes and reads a status line, headers and a `Content-Length` (or chunked) body: plain `http://`
only, no TLS, no redirects, which is all a loopback load test needs.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

BOUNDARY = "deepfakeloadtestboundary7MA4YWxkTrZu0gW"


def multipart_post(
    url: str, path: str, field: str, filename: str, data: bytes, headers: dict[str, str]
) -> bytes:
    """The whole request (head and multipart body) as bytes, ready to be sent any number of times."""
    parts = urlsplit(url)
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawConnection:
    """One keep-alive connection; reopened after the server closes it (e.g. after a 413 with Connection: close)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"url={url!r}: the raw client speaks plain http:// only (use client=httpx)")
        self.host, self.port = parts.hostname, parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(raw)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip().lower()
            if b"chunked" in fields.get(b"transfer-encoding", b""):
                body = b""
                while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                    body += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                body = await self.reader.readexactly(int(fields.get(b"content-length", b"0")))
            if fields.get(b"connection") == b"close":
                await self.close()
            return status, body
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None
