"""Load test of the HTTP service: concurrent clients, valid and invalid images mixed, against a real server.

    python -m deepfake_lightning.inference.loadtest ckpt_path=RUN/checkpoints/best.ckpt [requests=2000] [concurrency=64]
    python -m deepfake_lightning.inference.loadtest url=http://127.0.0.1:8000 [api_key=...] [out=load.json]

With `ckpt_path` it starts the server itself (`deepfake_lightning.serve` on loopback, a free port), warms it up,
reads its resident memory after the warm-up and after the run, and stops it; with `url` it drives a running
server (no memory figures). It prints one JSON summary: answers per status, connection errors and timeouts,
5xx count, valid images answered without a probability, p50/p90/p99 latency, throughput and memory. It is
bounded: `requests` in total and at most `max_seconds`; whatever has not finished by then counts as unfinished.
Every option is `key=value` (no Hydra: a measuring tool should not create a run dir of its own).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from deepfake_lightning.inference.server_process import ServerProcess

DEFAULTS: dict[str, Any] = {
    "ckpt_path": None,  # start a server with this model ...
    "url": None,  # ... or drive a running one
    "api_key": None,
    "requests": 2000,
    "concurrency": 64,
    "invalid_fraction": 0.25,
    "warmup": 64,  # requests before the memory baseline is read
    "image_size": 160,  # side of the valid test images
    "timeout_s": 60.0,  # per request
    "max_seconds": 900.0,  # whole run
    "seed": 0,
    "out": None,  # also write the summary to this .json
}


@dataclass(frozen=True)
class Payload:
    name: str
    data: bytes
    valid: bool
    expected: tuple[int, ...]  # statuses the service documents for it


@dataclass(frozen=True)
class Outcome:
    payload: int
    seconds: float
    status: int | None = None  # None: no HTTP answer
    error: str | None = None  # "connection" | "timeout"
    probability: bool = False  # a 200 carrying p_fake in [0, 1]


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels with almost no data: a decompression bomb, ~60 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def _encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def make_payloads(image_size: int = 160, seed: int = 0) -> list[Payload]:
    """Valid images in several encodings and the invalid kinds a client can send, with their statuses."""
    rng = np.random.default_rng(seed)

    def pixels(size: int) -> np.ndarray:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)

    jpeg = _encode(pixels(image_size), "JPEG")
    valid = [
        Payload("face_a.jpg", jpeg, True, (200,)),
        Payload("face_b.jpg", _encode(pixels(image_size), "JPEG"), True, (200,)),
        Payload("face.png", _encode(pixels(image_size), "PNG"), True, (200,)),
        Payload("face_rgba.png", _encode(pixels(image_size), "PNG", "RGBA"), True, (200,)),
        Payload("face_grey.jpg", _encode(pixels(image_size), "JPEG", "L"), True, (200,)),
        Payload("face.webp", _encode(pixels(image_size), "WEBP"), True, (200,)),
    ]
    invalid = [
        Payload("empty.jpg", b"", False, (422,)),
        Payload("random.jpg", rng.bytes(4096), False, (422,)),
        Payload("text.jpg", b"not an image at all\n" * 10, False, (422,)),
        Payload("truncated.jpg", jpeg[: len(jpeg) // 2], False, (422,)),
        Payload("thumbnail.png", _encode(pixels(20), "PNG"), False, (422,)),  # below min_size
        Payload("bomb.png", png_claiming(30000, 30000), False, (413,)),
    ]
    return valid + invalid


def schedule(payloads: Sequence[Payload], requests: int, invalid_fraction: float, seed: int = 0) -> list[int]:
    """Payload index per request: a seeded mix with `invalid_fraction` invalid ones, cycling through each kind."""
    rng = random.Random(seed)
    valid = [i for i, p in enumerate(payloads) if p.valid]
    invalid = [i for i, p in enumerate(payloads) if not p.valid]
    order: list[int] = []
    taken = {True: 0, False: 0}
    for _ in range(requests):
        bad = bool(invalid) and rng.random() < invalid_fraction
        pool = invalid if bad else valid
        order.append(pool[taken[bad] % len(pool)])
        taken[bad] += 1
    return order


async def drive(
    url: str,
    payloads: Sequence[Payload],
    order: Sequence[int],
    concurrency: int,
    timeout_s: float,
    max_seconds: float,
    api_key: str | None = None,
) -> list[Outcome | None]:
    """POST /v1/predict once per entry of `order` from `concurrency` clients; None: not finished in time."""
    outcomes: list[Outcome | None] = [None] * len(order)
    pending_requests = iter(range(len(order)))  # shared by the workers; asyncio runs one at a time
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-API-Key": api_key} if api_key else {}
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, headers=headers) as client:

        async def one(i: int) -> Outcome:
            payload = payloads[order[i]]
            start = time.perf_counter()
            try:
                response = await client.post("/v1/predict", files={"file": (payload.name, payload.data)})
            except httpx.TimeoutException:
                return Outcome(order[i], time.perf_counter() - start, error="timeout")
            except httpx.TransportError:
                return Outcome(order[i], time.perf_counter() - start, error="connection")
            seconds = time.perf_counter() - start
            probability = False
            if response.status_code == 200:
                p_fake = response.json().get("p_fake")
                probability = isinstance(p_fake, (int, float)) and 0.0 <= p_fake <= 1.0
            return Outcome(order[i], seconds, response.status_code, probability=probability)

        async def worker() -> None:
            for i in pending_requests:
                outcomes[i] = await one(i)

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=max_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return outcomes


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in (0, 1])."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def summarize(
    outcomes: Sequence[Outcome | None], payloads: Sequence[Payload], seconds: float
) -> dict[str, Any]:
    finished = [o for o in outcomes if o is not None]
    answered = [o for o in finished if o.status is not None]
    latencies = sorted(o.seconds * 1000 for o in answered)
    valid = [o for o in finished if payloads[o.payload].valid]
    return {
        "requests": len(outcomes),
        "finished": len(finished),
        "unfinished": len(outcomes) - len(finished),
        "valid_requests": len(valid),
        "statuses": {str(k): v for k, v in sorted(Counter(o.status for o in answered).items())},
        "server_errors": sum(1 for o in answered if o.status is not None and o.status >= 500),
        "connection_errors": sum(1 for o in finished if o.error == "connection"),
        "timeouts": sum(1 for o in finished if o.error == "timeout"),
        "unexpected_status": sum(1 for o in answered if o.status not in payloads[o.payload].expected),
        "valid_without_probability": sum(1 for o in valid if not o.probability),
        "seconds": round(seconds, 3),
        "throughput_rps": round(len(answered) / seconds, 1) if seconds > 0 else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p90": round(percentile(latencies, 0.90), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(latencies[-1], 1) if latencies else None,
        },
    }


def _timed(url: str, payloads: list[Payload], order: list[int], options: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    outcomes = asyncio.run(
        drive(
            url,
            payloads,
            order,
            int(options["concurrency"]),
            float(options["timeout_s"]),
            float(options["max_seconds"]),
            options["api_key"],
        )
    )
    return summarize(outcomes, payloads, time.perf_counter() - start)


def run_load_test(**overrides: Any) -> dict[str, Any]:
    """The whole measurement (options as in `DEFAULTS`); returns the summary."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; allowed {sorted(DEFAULTS)}")
    options = {**DEFAULTS, **overrides}
    if (options["ckpt_path"] is None) == (options["url"] is None):
        raise ValueError("set exactly one of ckpt_path=MODEL (start a server) or url=http://HOST:PORT")
    for key in ("requests", "concurrency"):
        if int(options[key]) < 1:
            raise ValueError(f"{key}={options[key]!r}: expected an integer >= 1")
    payloads = make_payloads(int(options["image_size"]), int(options["seed"]))
    order = schedule(
        payloads, int(options["requests"]), float(options["invalid_fraction"]), int(options["seed"])
    )
    warm = schedule(
        payloads, int(options["warmup"]), float(options["invalid_fraction"]), int(options["seed"]) + 1
    )
    summary: dict[str, Any] = {"options": {k: v for k, v in options.items() if k != "api_key"}}
    if options["url"] is not None:
        summary["run"] = _timed(str(options["url"]), payloads, order, options)
        return summary
    env = {"DEEPFAKE_API_KEY": options["api_key"]} if options["api_key"] else None
    with ServerProcess(options["ckpt_path"], env=env) as server:
        if warm:
            summary["warmup"] = _timed(server.url, payloads, warm, options)
        rss_warm = server.rss_bytes()
        summary["run"] = _timed(server.url, payloads, order, options)
        rss_after = server.rss_bytes()
    if rss_warm and rss_after:
        summary["memory"] = {
            "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
            "rss_after_run_mb": round(rss_after / 2**20, 1),
            "ratio": round(rss_after / rss_warm, 3),
        }
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any("=" not in a for a in args):
        raise SystemExit(__doc__)
    options = OmegaConf.to_container(OmegaConf.from_dotlist(args), resolve=True)
    assert isinstance(options, dict)
    try:
        summary = run_load_test(**{str(k): v for k, v in options.items()})
    except ValueError as err:
        raise SystemExit(f"Invalid option: {err}") from None
    text = json.dumps(summary, indent=2)
    print(text)
    if options.get("out"):
        Path(str(options["out"])).write_text(text + "\n")
    return summary


if __name__ == "__main__":
    main()
