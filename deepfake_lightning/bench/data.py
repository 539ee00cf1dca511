"""Input pipeline: JPEG decoders, decode + train augmentation, decode + eval transform, 1..N DataLoader workers,
and the `augment_on=device` split (the workers' uint8 part per core, kornia's batch part on the device).

In-process rows run on one core (torch and OpenCV limited to one thread), so they read as images/s per core.
DataLoader rows use the project's own `ImageDataset` + `collate_skipping`, i.e. what training really runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.io import decode_jpeg, read_file

from deepfake_lightning.bench.rows import (
    PeakMemory,
    Row,
    Timing,
    device_label,
    make_row,
    sync_for,
    time_batches,
    time_calls,
)
from deepfake_lightning.data.dataset import ImageDataset, collate_skipping
from deepfake_lightning.data.device_augment import DEVICE_GROUPS, DeviceAugment
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.index import Sample
from deepfake_lightning.data.transforms import build_eval_transform, build_train_transform

Decoder = Callable[[str], np.ndarray]
BASELINE_DECODER = "pil"
CPU = torch.device("cpu")


def _opencv(path: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _torchvision(path: str) -> np.ndarray:
    return decode_jpeg(read_file(path)).permute(1, 2, 0).numpy()


DECODERS: dict[str, Decoder] = {
    "pil": lambda path: load_rgb(path, decoder="pil"),  # the project's original path (EXIF, modes, checks)
    "auto": lambda path: load_rgb(path, decoder="auto"),  # the default now: simplejpeg when it is exact
    "opencv": _opencv,
    "torchvision": _torchvision,
}


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Limit torch and OpenCV to one thread, as inside a DataLoader worker."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def _time_per_image(fn: Callable[[str], Any], paths: Sequence[str], passes: int) -> Timing:
    for path in paths[: min(8, len(paths))]:  # warm caches and lazy imports
        fn(path)
    seconds = []
    for _ in range(passes):
        for path in paths:
            start = time.perf_counter()
            fn(path)
            seconds.append(time.perf_counter() - start)
    return Timing(seconds, 1)


def _transforms(cfg: Mapping[str, Any]) -> dict[str, Callable[[np.ndarray], torch.Tensor]]:
    size, preprocess, normalize, augment = (
        cfg["image_size"],
        cfg["preprocess"],
        cfg["normalize"],
        cfg["augment"],
    )
    return {
        "decode": lambda image: image,
        "train_aug": build_train_transform(size, preprocess, augment, normalize),
        "eval_transform": build_eval_transform(size, preprocess, normalize),
        # augment_on=device: what is left for the workers (decode, size, CPU-only groups; uint8 out)
        "train_uint8": build_train_transform(size, preprocess, augment, None, skip_groups=DEVICE_GROUPS),
    }


def bench_in_process(samples: Sequence[Sample], cfg: Mapping[str, Any]) -> list[Row]:
    """Every decoder alone, then the baseline (PIL) and the default decoder with each transform, one core."""
    paths = [path for path, _ in samples]
    rows = []
    transforms = _transforms(cfg)
    plans = [(decoder, "decode") for decoder in cfg["decoders"]]
    plans += [
        (decoder, stage)
        for stage in ("train_aug", "eval_transform", "train_uint8")
        for decoder in ("pil", cfg["decoder"])
    ]
    with one_core():
        for decoder, stage in plans:
            decode, transform = DECODERS[decoder], transforms[stage]
            with PeakMemory(CPU) as memory:
                timing = _time_per_image(lambda p: transform(decode(p)), paths, cfg["passes"])  # noqa: B023
            backend = f"baseline:{decoder}" if decoder == BASELINE_DECODER else decoder
            rows.append(_row(stage, backend, timing, memory, cfg, batch_size=1, workers=0))
    return rows


def bench_loader(samples: Sequence[Sample], cfg: Mapping[str, Any], workers: int, stage: str) -> Row:
    """Images/s through a real DataLoader (default decoder), timed after the first batch arrives."""
    transform = _transforms(cfg)[stage]
    dataset = ImageDataset(list(samples) * cfg["passes"], transform, on_bad_image="raise")
    loader = DataLoader(
        dataset,
        batch_size=cfg["batch_size"],
        num_workers=workers,
        collate_fn=collate_skipping,
        prefetch_factor=cfg["prefetch_factor"] if workers else None,
    )
    with PeakMemory(CPU) as memory:
        iterator = iter(loader)
        next(iterator)  # worker start-up is not throughput
        timing = time_batches(iterator)
    row = _row(
        stage,
        f"dataloader:{cfg['decoder']}",
        timing,
        memory,
        cfg,
        batch_size=cfg["batch_size"],
        workers=workers,
    )
    row.extra["img_s_per_worker"] = round(row.throughput_img_s / workers, 2)
    return row


def _row(
    stage: str, backend: str, timing: Timing, memory: PeakMemory, cfg: Mapping[str, Any], **fields: Any
) -> Row:
    threads = 1 if fields["workers"] <= 1 else fields["workers"]
    return make_row(
        "data",
        stage,
        backend,
        timing,
        memory,
        device="cpu",
        precision="uint8" if stage in ("decode", "train_uint8") else "fp32",
        image_size=cfg["image_size"] if stage != "decode" else cfg["source_size"],
        threads=threads,
        **fields,
    )


def bench_device_augment(samples: Sequence[Sample], cfg: Mapping[str, Any], device: torch.device) -> Row:
    """`augment_on=device`: kornia's train augmentation + normalisation of a uint8 batch on `device`."""
    transform = _transforms(cfg)["train_uint8"]
    images = [transform(load_rgb(path)) for path, _ in samples[: cfg["batch_size"]]]
    batch = torch.stack(images).to(device)
    augment = DeviceAugment(cfg["augment"], cfg["normalize"]).to(device)
    sync = sync_for(device)
    with PeakMemory(device) as memory:
        timing = time_calls(lambda: augment(batch), len(batch), cfg["device_iters"], 2, sync)
    return make_row(
        "data",
        "device_augment",
        "kornia",
        timing,
        memory,
        device=device_label(device),
        precision="fp32",
        batch_size=len(batch),
        image_size=cfg["image_size"],
        workers=0,
        threads=torch.get_num_threads(),
    )


def bench_data(samples: Sequence[Sample], cfg: Mapping[str, Any], device: torch.device = CPU) -> list[Row]:
    rows = bench_in_process(samples, cfg)
    for stage in cfg["loader_stages"]:
        for workers in cfg["workers"]:
            rows.append(bench_loader(samples, cfg, workers, stage))
    if cfg.get("device_augment", True):
        rows.append(bench_device_augment(samples, cfg, device))
    return rows
