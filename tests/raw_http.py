"""Raw-socket HTTP/1.1 for the tests that probe a real server as a hostile client would: heads sent without a
body, bodies trickled or sent forever, answers read byte by byte. httpx cannot do these (it sends whole requests)."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass

BOUNDARY = "limitsboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def request_head(port: int, path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def part_head(name: str = "big.jpg", field: str = "file") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def multipart_body(data: bytes, name: str = "upload.bin", field: str = "file") -> bytes:
    return part_head(name, field) + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def chunk(data: bytes) -> bytes:
    """One chunk of a `Transfer-Encoding: chunked` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():  # one chunk is all a JSON error needs
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(body[: body.rfind(b"}") + 1])


def response_headers(raw: bytes) -> dict[str, str]:
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1")
    pairs = (line.partition(":") for line in head.split("\r\n")[1:])
    return {name.strip().lower(): value.strip() for name, _, value in pairs}


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Bytes until a JSON body has arrived, the server closes, or `timeout` passes."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return data


@dataclass
class Flood:
    answer: bytes  # what the server said
    sent_before: int  # body bytes sent before the answer arrived
    sent_after: int  # body bytes sent after it
    reset: bool  # the server stopped the connection (reset or broken pipe)
    seconds_after: float  # from the answer to the reset (or to giving up)


def flood(
    sock: socket.socket,
    frame: bytes,
    before_answer: bool = True,
    max_after: int = 64 << 20,
    max_s: float = 30,
) -> Flood:
    """Send `frame` over and over, before the answer (unless `before_answer` is false: then wait for it) and
    after it, until the server resets the connection, `max_after` bytes went in after the answer, or `max_s`."""
    sock.setblocking(False)
    answer, pending = b"", b""
    sent_before = sent_after = 0
    answered_at: float | None = None
    start = time.monotonic()
    reset = False
    while time.monotonic() - start < max_s and sent_after < max_after:
        readable, writable, _ = select.select([sock], [sock], [], 0.05)
        try:
            if readable:
                data = sock.recv(65536)
                if data and not answer.endswith(b"}"):
                    answer += data
                    answered_at = answered_at or time.monotonic()
            if writable and (answered_at is not None or before_answer):
                pending = pending or frame
                sent = sock.send(pending)
                pending = pending[sent:]
                if answered_at is None:
                    sent_before += sent
                else:
                    sent_after += sent
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            reset = True
            break
    end = time.monotonic()
    sock.setblocking(True)
    return Flood(answer, sent_before, sent_after, reset, end - (answered_at or end))
