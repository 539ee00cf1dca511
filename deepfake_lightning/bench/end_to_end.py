"""`predict` end to end next to its model alone: same backend, precision, batch size and workers, same files.

For each backend `predict` runs (torch fp32 with BatchNorm folded and channels-last, ONNX Runtime fp32 and
static int8 with one session per core), three rows:

- `model_only`: `Detector.score` on decoded, preprocessed batches (prepared once, cycled), no file I/O;
- `end_to_end`: `predict_files` into a CSV, as the CLI runs it: decode and preprocess in DataLoader workers,
  score, write. Python start-up and model loading are left out (model loading is `extra.load_s`);
- `decode_only`: the same decoding workers (threads or processes, as `predict` picks) without the model. End
  to end close to this figure means decoding is the limit, not the model.

`extra.e2e_over_model_only` of each end-to-end row is what the target (>= 0.70) reads. With `repeats` > 1 the
model-only and end-to-end runs alternate and each row keeps its fastest run (other jobs' load only slows a
run down). The task's baseline is the naive way to score a folder: `Detector.predict` one file at a time in one
process (torch fp32).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lightning.bench.rows import Row, device_label
from deepfake_lightning.bundle import ModelBundle
from deepfake_lightning.data.images import BadImageError
from deepfake_lightning.inference.backends import OnnxBackend, TorchBackend
from deepfake_lightning.inference.detector import Detector
from deepfake_lightning.prediction.files import (
    COLUMNS,
    auto_decode,
    batch_source,
    loader_sizes,
    predict_files,
)
from deepfake_lightning.prediction.row_writer import RowWriter
from deepfake_lightning.prediction.scoring import stack_inputs
from deepfake_lightning.prediction.uint8_transfer import Uint8Transfer

log = logging.getLogger(__name__)
POOL = 64  # prepared images cycled by the model-only rows
# cfg.backends name -> (row backend, precision); the names of the inference rows that time the same runtime
BACKENDS = {
    "torch_fp32": ("eager+channels_last+fold_bn", "fp32"),
    "onnx_fp32": ("onnxruntime:cpu:per_core", "fp32"),
    "onnx_int8": ("onnxruntime:cpu:per_core", "int8"),
}


def detector_factories(
    net: torch.nn.Module, preprocessing: Mapping[str, Any], device: torch.device, onnx: Mapping[str, Path]
) -> dict[str, Callable[[], Detector]]:
    """How `predict` builds each backend for this network (ONNX ones only when exported)."""

    def info() -> ModelBundle:  # threshold 0.5, temperature 1: speed does not depend on them
        return ModelBundle(preprocessing=dict(preprocessing))

    found: dict[str, Callable[[], Detector]] = {
        "torch_fp32": lambda: Detector(TorchBackend(net, str(device)), info())
    }
    for precision, path in onnx.items():
        found[f"onnx_{precision}"] = lambda p=path: Detector(OnnxBackend(p, sessions=0), info())
    return found


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds > 0 else 0.0


def _row(stage: str, name: str, seconds: list[float], n: int, size: int, **fields: Any) -> Row:
    """Per-batch (or per-file) intervals -> a Row with the overall rate and per-call latency percentiles."""
    ms = np.asarray(seconds or [0.0]) * 1e3
    backend, precision = BACKENDS.get(name, (name, "fp32"))
    return Row(
        task="predict",
        stage=stage,
        backend=fields.pop("backend", backend),
        precision=fields.pop("precision", precision),
        throughput_img_s=_rate(n, sum(seconds)),
        latency_ms_p50=round(float(np.percentile(ms, 50)), 3),
        latency_ms_p99=round(float(np.percentile(ms, 99)), 3),
        image_size=size,
        threads=torch.get_num_threads(),
        **fields,
    )


def model_only(detector: Detector, paths: Sequence[Path], n: int, batch_size: int) -> list[float]:
    """Seconds per `score` call over `n` images in batches of `batch_size`, from a cycled pool of prepared images."""
    pool = []
    for path in paths[: max(POOL, batch_size)]:
        try:
            pool.append(detector.prepare(path, str(path))[0])
        except BadImageError:
            continue
    batches = [
        stack_inputs([pool[(start + i) % len(pool)] for i in range(batch_size)])
        for start in range(0, len(pool), batch_size)
    ]
    detector.score(batches[0])  # warm-up: first-call allocations, oneDNN primitive creation
    seconds = []
    for call, done in enumerate(range(0, n, batch_size)):
        batch = batches[call % len(batches)]
        count = min(batch_size, n - done)
        inputs = batch if count == batch_size else [t[:count] for t in batch]
        start = time.perf_counter()
        detector.score(inputs)
        seconds.append(time.perf_counter() - start)
    return seconds


def end_to_end(
    detector: Detector, paths: Sequence[Path], batch_size: int, workers: int, output: Path, decode_in: str
) -> tuple[list[float], int]:
    """Seconds per batch of rows (first one includes the workers' start) and the error-row count."""
    errors = 0
    seconds = []
    start = last = time.perf_counter()
    rows = predict_files(detector, paths, batch_size, workers, decode_in=decode_in)
    with RowWriter(output, COLUMNS) as out:
        for i, row in enumerate(rows, start=1):
            out.write(row)
            errors += bool(row["error"])
            if i % batch_size == 0 or i == len(paths):
                now = time.perf_counter()
                seconds.append(now - last)
                last = now
    log.debug("end to end: %.2f s", time.perf_counter() - start)
    return seconds, errors


def decode_only(
    detector: Detector, paths: Sequence[Path], batch_size: int, workers: int, decode_in: str
) -> list[float]:
    """Seconds per batch of `predict_files`'s batch source and normalization, without the model."""
    transfer = Uint8Transfer(detector)
    seconds = []
    last = time.perf_counter()
    for batch in batch_source(detector, transfer, paths, batch_size, workers, decode_in):
        if batch["inputs"] is not None:
            transfer.normalize(batch["inputs"])
        now = time.perf_counter()
        seconds.append(now - last)
        last = now
    return seconds


def serial_baseline(detector: Detector, paths: Sequence[Path]) -> list[float]:
    """`Detector.predict` one file at a time: decode, preprocess and score in turn, one process."""
    seconds = []
    for path in paths:
        start = time.perf_counter()
        try:
            detector.predict(path)
        except BadImageError:
            pass
        seconds.append(time.perf_counter() - start)
    return seconds


def bench_end_to_end(
    net: torch.nn.Module,
    preprocessing: Mapping[str, Any],
    device: torch.device,
    cfg: Mapping[str, Any],
    paths: Sequence[Path],
    onnx_paths: Mapping[str, Path],
    out_dir: Path,
) -> list[Row]:
    """The baseline row, then model_only / end_to_end / decode_only rows for each backend in `cfg.backends`."""
    paths = list(paths)
    n, size = len(paths), int(preprocessing["image_size"])
    factories = detector_factories(net, preprocessing, device, onnx_paths)
    cpu = device_label(torch.device("cpu"))
    baseline_paths = paths[: int(cfg["baseline_files"])]
    seconds = serial_baseline(factories["torch_fp32"](), baseline_paths)
    rows = [
        _row(
            "serial",
            "baseline:serial",
            seconds,
            len(baseline_paths),
            size,
            device=device_label(device),
            batch_size=1,
            workers=0,
        )
    ]
    decoded: dict[tuple[int, int, str], list[float]] = {}
    for name in cfg["backends"]:
        if name not in factories:
            log.warning("predict bench: backend %s not available (no ONNX export?); skipped", name)
            continue
        start = time.perf_counter()
        detector = factories[name]()
        load_s = time.perf_counter() - start
        decode_in = cfg.get("decode_in") or "auto"
        decode_in = auto_decode(detector) if decode_in == "auto" else decode_in
        batch_size, workers = loader_sizes(detector, cfg.get("batch_size"), cfg.get("num_workers"), decode_in)
        label = device_label(device) if name.startswith("torch") else cpu
        common = {"device": label, "batch_size": batch_size, "workers": workers}
        model_runs, e2e_runs = [], []
        for _ in range(max(1, int(cfg.get("repeats", 1)))):  # alternated, so a burst of load hits both
            model_runs.append(model_only(detector, paths, n, batch_size))
            output = out_dir / f"predict_{name}.csv"
            timed, errors = end_to_end(detector, paths, batch_size, workers, output, decode_in)
            e2e_runs.append(timed)
        model = _row("model_only", name, min(model_runs, key=sum), n, size, **common)
        e2e = _row("end_to_end", name, min(e2e_runs, key=sum), n, size, **common)
        key = (batch_size, workers, decode_in)
        if key not in decoded:
            decoded[key] = decode_only(detector, paths, batch_size, workers, decode_in)
        decode = _row(
            "decode_only",
            name,
            decoded[key],
            n,
            size,
            backend="dataloader",
            precision="uint8->fp32",
            **common,
        )
        ratio = round(e2e.throughput_img_s / model.throughput_img_s, 3) if model.throughput_img_s else None
        e2e.extra |= {
            "model_only_img_s": model.throughput_img_s,
            "decode_only_img_s": decode.throughput_img_s,
            "e2e_over_model_only": ratio,
            "load_s": round(load_s, 3),
            "files": n,
            "error_rows": errors,
            "repeats": len(e2e_runs),
            "decode_in": decode_in,
        }
        log.info(
            "predict %s: model only %.0f img/s, end to end %.0f img/s (%.2f of model only), decode only "
            "%.0f img/s; batch %d, %d workers (%s), %d files",
            name,
            model.throughput_img_s,
            e2e.throughput_img_s,
            ratio or 0.0,
            decode.throughput_img_s,
            batch_size,
            workers,
            decode_in,
            n,
        )
        rows += [model, e2e, decode]
    return rows
