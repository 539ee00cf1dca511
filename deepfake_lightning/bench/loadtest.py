"""Load test of the HTTP service: concurrent clients, valid and invalid images mixed, against a real server.

    python -m deepfake_lightning.bench.loadtest ckpt_path=RUN/checkpoints/best.ckpt [requests=2000] [concurrency=64]
    python -m deepfake_lightning.bench.loadtest url=http://127.0.0.1:8000 [api_key=...] [out=load.json]

With `ckpt_path` it starts the server itself (`deepfake_lightning.serve` on loopback, a free port), warms it up,
reads its resident memory after the warm-up and after the run, and stops it; with `url` it drives a running
server (no memory figures). It prints one JSON summary: answers per status, connection errors and timeouts,
5xx count, valid images answered without a probability, p50/p90/p99 latency, throughput and memory. It is
bounded: `requests` in total and at most `max_seconds`; whatever has not finished by then counts as unfinished.
Every option is `key=value` (no Hydra: a measuring tool should not create a run dir of its own).

With `ckpt_path`, the same run also measures, one after the other on the same model and the same requests:
`serial` (today's default server with `max_batch_size=1`: the previous service, one request at a time through
one lock, default backend; off with `compare=false`), `run` (the server with dynamic batching, `max_batch_size`,
`batch_wait_ms` and `backend`), and
`model_only` (the same backend, `onnx_sessions` and `torch_replicas` scoring prepared batches of `max_batch_size`
in this process, no HTTP, while no
server runs; measured before and after the servers, and `comparison` uses the mean). `comparison` puts them
side by side: batched / serial requests per second, and the images per second the batched server scored as a
fraction of the model-only rate. The load average is recorded with them.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
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

from deepfake_lightning.bench.raw_client import RawConnection, multipart_post
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
    "max_batch_size": 16,  # the batched server's setting, and the batch of the model-only measurement
    "batch_wait_ms": 5.0,
    "backend": "auto",  # the batched server's backend (auto | torch | onnx), also the model-only rate's
    "onnx_sessions": 0,  # with backend=onnx: the batched server's and the model-only rate's sessions
    "torch_replicas": 0,  # with torch: the batched server's and the model-only rate's per-core copies (serve.yaml)
    "client": "raw",  # raw: prebuilt requests, ~no client CPU (raw_client.py); httpx: for https:// servers
    "compare": True,  # with ckpt_path: also run the serial server (max_batch_size=1) first
    "model_only_seconds": 10.0,  # with ckpt_path: how long the model-only rate is measured (0: not measured)
    "server_overrides": [],  # more `key=value` for the started servers (e.g. face_crop=true)
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
    client: str = "raw",
) -> list[Outcome | None]:
    """POST /v1/predict once per entry of `order` from `concurrency` clients; None: not finished in time.

    `client=raw` (prebuilt bytes over one keep-alive connection per client, `raw_client.py`) or `httpx`."""
    outcomes: list[Outcome | None] = [None] * len(order)
    pending_requests = iter(range(len(order)))  # shared by the workers; asyncio runs one at a time
    headers = {"X-API-Key": api_key} if api_key else {}
    if client == "raw":
        raws = [multipart_post(url, "/v1/predict", "file", p.name, p.data, headers) for p in payloads]
        connections = [RawConnection(url) for _ in range(concurrency)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, headers=headers) as session:

        async def post(i: int, worker: int) -> tuple[int, bytes]:
            payload = payloads[order[i]]
            if client == "raw":
                return await asyncio.wait_for(connections[worker].request(raws[order[i]]), timeout_s)
            response = await session.post("/v1/predict", files={"file": (payload.name, payload.data)})
            return response.status_code, response.content

        async def one(i: int, worker: int) -> Outcome:
            start = time.perf_counter()
            try:
                status, body = await post(i, worker)
            except (httpx.TimeoutException, asyncio.TimeoutError):
                return Outcome(order[i], time.perf_counter() - start, error="timeout")
            except (httpx.TransportError, OSError, asyncio.IncompleteReadError, ValueError):
                return Outcome(order[i], time.perf_counter() - start, error="connection")
            seconds = time.perf_counter() - start
            probability = False
            if status == 200:
                try:
                    p_fake = json.loads(body).get("p_fake")
                except (ValueError, AttributeError):  # not a JSON object: counted as no probability
                    p_fake = None
                probability = isinstance(p_fake, (int, float)) and 0.0 <= p_fake <= 1.0
            return Outcome(order[i], seconds, status, probability=probability)

        async def worker(k: int) -> None:
            for i in pending_requests:
                outcomes[i] = await one(i, k)

        tasks = [asyncio.create_task(worker(k)) for k in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=max_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if client == "raw":
            await asyncio.gather(*(c.close() for c in connections))
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
    scored = sum(1 for o in valid if o.probability)
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
        "images_scored_per_s": round(scored / seconds, 1) if seconds > 0 else None,
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
            str(options["client"]),
        )
    )
    return summarize(outcomes, payloads, time.perf_counter() - start)


def model_only_throughput(
    ckpt_path: str,
    backend: str,
    batch_size: int,
    payloads: Sequence[Payload],
    seconds: float,
    onnx_sessions: int = 0,
    torch_replicas: int = 1,
) -> dict[str, Any]:
    """Images/s of `Detector.score` on prepared batches of `batch_size` (the valid payloads, cycled), no HTTP."""
    import torch

    from deepfake_lightning.inference import Detector
    from deepfake_lightning.prediction.scoring import stack_inputs
    from deepfake_lightning.serve import torch_per_core

    detector = Detector.load(ckpt_path, backend=backend, onnx_sessions=onnx_sessions)
    torch_per_core(detector, torch_replicas)  # as the batched server does
    images = [p for p in payloads if p.valid]
    prepared = [detector.prepare(images[i % len(images)].data, "x")[0] for i in range(batch_size)]
    batch = stack_inputs(prepared)
    for _ in range(3):  # warm-up: allocator, oneDNN primitives
        detector.score(batch)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        detector.score(batch)
        calls += 1
    elapsed = time.perf_counter() - start
    return {
        "backend": detector.backend.name,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "torch_replicas": len(getattr(detector.backend, "replicas", [])) or None,
        "calls": calls,
        "images_per_s": round(calls * batch_size / elapsed, 1),
    }


def _serve_and_drive(
    options: dict[str, Any], payloads: list[Payload], order: list[int], warm: list[int], overrides: list[str]
) -> dict[str, Any]:
    env = {"DEEPFAKE_API_KEY": options["api_key"]} if options["api_key"] else None
    result: dict[str, Any] = {"server_overrides": overrides}
    with ServerProcess(options["ckpt_path"], overrides, env=env) as server:
        if warm:
            result["warmup"] = _timed(server.url, payloads, warm, options)
        rss_warm = server.rss_bytes()
        result["run"] = _timed(server.url, payloads, order, options)
        rss_after = server.rss_bytes()
    if rss_warm and rss_after:
        result["memory"] = {
            "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
            "rss_after_run_mb": round(rss_after / 2**20, 1),
            "ratio": round(rss_after / rss_warm, 3),
        }
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def run_load_test(**overrides: Any) -> dict[str, Any]:
    """The whole measurement (options as in `DEFAULTS`); returns the summary."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; allowed {sorted(DEFAULTS)}")
    options = {**DEFAULTS, **overrides}
    if (options["ckpt_path"] is None) == (options["url"] is None):
        raise ValueError("set exactly one of ckpt_path=MODEL (start a server) or url=http://HOST:PORT")
    if options["client"] not in ("raw", "httpx"):
        raise ValueError(f"client={options['client']!r}: expected raw or httpx")
    for key in ("requests", "concurrency", "max_batch_size"):
        if int(options[key]) < 1:
            raise ValueError(f"{key}={options[key]!r}: expected an integer >= 1")
    payloads = make_payloads(int(options["image_size"]), int(options["seed"]))
    order = schedule(
        payloads, int(options["requests"]), float(options["invalid_fraction"]), int(options["seed"])
    )
    warm = schedule(
        payloads, int(options["warmup"]), float(options["invalid_fraction"]), int(options["seed"]) + 1
    )
    summary: dict[str, Any] = {
        "options": {k: v for k, v in options.items() if k != "api_key"},
        "load_average_at_start": _load_average(),
    }
    if options["url"] is not None:
        summary["run"] = _timed(str(options["url"]), payloads, order, options)
        summary["load_average_at_end"] = _load_average()
        return summary
    common = [str(o) for o in options["server_overrides"]]
    measure_model = float(options["model_only_seconds"]) > 0
    model_args = (
        str(options["ckpt_path"]),
        str(options["backend"]),
        int(options["max_batch_size"]),
        payloads,
        float(options["model_only_seconds"]),
        int(options["onnx_sessions"]),
        int(options["torch_replicas"]) if int(options["max_batch_size"]) > 1 else 1,  # as serve does
    )
    if measure_model:  # before and after the servers: on a shared machine the load drifts during a run
        summary["model_only_before"] = model_only_throughput(*model_args)
    if options["compare"]:
        summary["serial"] = _serve_and_drive(options, payloads, order, warm, [*common, "max_batch_size=1"])
    batched = [
        *common,
        f"backend={options['backend']}",
        f"onnx_sessions={int(options['onnx_sessions'])}",
        f"torch_replicas={int(options['torch_replicas'])}",
        f"max_batch_size={int(options['max_batch_size'])}",
        f"batch_wait_ms={float(options['batch_wait_ms'])}",
    ]
    summary.update(_serve_and_drive(options, payloads, order, warm, batched))
    if measure_model:
        summary["model_only"] = model_only_throughput(*model_args)
    summary["load_average_at_end"] = _load_average()
    summary["comparison"] = _comparison(summary)
    return summary


def _comparison(summary: dict[str, Any]) -> dict[str, Any]:
    run = summary["run"]
    serial = summary.get("serial", {}).get("run", {})
    rates = [summary[k]["images_per_s"] for k in ("model_only_before", "model_only") if k in summary]
    model_rate = round(sum(rates) / len(rates), 1) if rates else None
    return {
        "serial_rps": serial.get("throughput_rps"),
        "batched_rps": run["throughput_rps"],
        "batched_vs_serial": _ratio(run["throughput_rps"], serial.get("throughput_rps")),
        "serial_images_per_s": serial.get("images_scored_per_s"),
        "batched_images_per_s": run["images_scored_per_s"],
        "model_only_images_per_s": model_rate,  # mean of the rate before and after the servers
        "batched_vs_model_only": _ratio(run["images_scored_per_s"], model_rate),
        "serial_p99_ms": serial.get("latency_ms", {}).get("p99"),
        "batched_p99_ms": run["latency_ms"]["p99"],
        "errors_on_valid_requests": run["valid_without_probability"] + run["server_errors"],
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


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
