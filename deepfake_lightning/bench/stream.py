"""Folder vs LitData shards: training-loader images/s and the latency to the first batch, on a 140k-sized set.

Both sides are what training runs: `DeepfakeDataModule` (faces140k layout, one JPEG file per image) against
`StreamingDataModule` over the shards `python -m deepfake_lightning.data.shard` writes of the same set, each
through the same train transform, batch size and worker count. The synthetic set (Kaggle's layout, 50k/10k/10k
images per class at 256 px by default: about 5 GB, 30-40 min to generate on two free cores) and its shards (about
the same size again) are written once under `cache_dir` and reused.

`setup_s` is the data module's set-up (the folder's CSV index, or the shards' splits.csv and shards.json),
`first_batch_s` the time from asking for the loader's iterator to holding the first batch (worker start, the first
files or chunk opened), `time_to_first_batch_s` their sum: what a training run waits before its first step.
Throughput is timed over the batches after the first. Both read from the page cache when the machine has the
memory for the set, since it was just written: on a cold network filesystem the folder side opens 100k files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

from deepfake_lightning.bench.rows import PeakMemory, Row, Timing, make_row, time_batches
from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.shard_format import META_NAME
from deepfake_lightning.data.shard_writer import write_shards
from deepfake_lightning.data.streaming_datamodule import StreamingDataModule
from deepfake_lightning.data.synthetic import generate_synthetic_dataset

log = logging.getLogger(__name__)
BASELINE = "baseline:folder"
SHARDS = "litdata_shards"
CPU = torch.device("cpu")


def stream_set(cache_dir: str | Path, cfg: Mapping[str, Any], seed: int) -> tuple[Path, Path]:
    """The synthetic set (`n_per_class` train/valid/test images per class) and its shards, made once."""
    n_train, n_valid, n_test = (int(n) for n in cfg["n_per_class"])
    size = int(cfg["source_size"])
    name = f"stream_{size}px_{n_train}_{n_valid}_{n_test}_s{seed}"
    start = time.perf_counter()
    root = generate_synthetic_dataset(
        Path(cache_dir) / name,
        n_train=n_train,
        n_valid=n_valid,
        n_test=n_test,
        image_size=size,
        seed=seed,
        workers=int(cfg["generator_workers"]),
    )
    log.info("stream bench: folder set ready in %.1f s (%s)", time.perf_counter() - start, root)
    out = Path(cache_dir) / f"{name}_shards_{cfg['chunk_bytes']}"
    if not (out / META_NAME).is_file():
        start = time.perf_counter()
        folder = DeepfakeDataModule(root=str(root), layout="faces140k")
        folder.setup()
        assert folder.index is not None
        write_shards(
            folder.index, folder.groups, root, out, cfg["chunk_bytes"], int(cfg["generator_workers"]), seed
        )
        log.info("stream bench: shards written in %.1f s (%s)", time.perf_counter() - start, out)
    return root, out


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)


def _time_loader(module: DeepfakeDataModule, batches: int | None) -> tuple[float, float, Timing]:
    """(set-up s, first-batch s, per-batch timing of up to `batches` batches after the first)."""
    start = time.perf_counter()
    module.setup()
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    iterator = iter(module.train_dataloader())
    next(iterator)
    first_s = time.perf_counter() - start
    return setup_s, first_s, time_batches(iterator, batches)


def bench_stream(
    cache_dir: str | Path, cfg: Mapping[str, Any], data: Mapping[str, Any], seed: int = 0
) -> list[Row]:
    """One row per (reader, worker count): folder files (the baseline) and LitData shards of the same set."""
    root, shards = stream_set(cache_dir, cfg, seed)
    # PL_GLOBAL_SEED: both sides seed their augmentations alike
    L.seed_everything(seed, workers=True, verbose=False)
    loader = {
        "image_size": int(data["image_size"]),
        "preprocess": data["preprocess"],
        "augment": data["augment"],
        "normalize": data["normalize"],
        "decoder": data.get("decoder", "auto"),
        "batch_size": int(cfg["batch_size"]),
        "prefetch_factor": data.get("prefetch_factor"),
        "pin_memory": False,
        "persistent_workers": False,
        "channels_last": False,
    }
    sizes = {BASELINE: _size_mb(root), SHARDS: _size_mb(shards)}
    rows = []
    for workers in cfg["workers"]:
        for backend in (BASELINE, SHARDS):
            settings = {**loader, "num_workers": int(workers)}
            if workers == 0:
                settings["prefetch_factor"] = None
            module = (
                DeepfakeDataModule(root=str(root), layout="faces140k", **settings)
                if backend == BASELINE
                else StreamingDataModule(uri=str(shards), **settings)
            )
            with PeakMemory(CPU) as memory:
                setup_s, first_s, timing = _time_loader(module, cfg.get("batches"))
            row = make_row(
                "stream",
                "train_aug",
                backend,
                timing,
                memory,
                device="cpu",
                precision="fp32",
                batch_size=int(cfg["batch_size"]),
                image_size=int(data["image_size"]),
                workers=int(workers),
                threads=max(1, int(workers)),
            )
            row.extra |= {
                "setup_s": round(setup_s, 3),
                "first_batch_s": round(first_s, 3),
                "time_to_first_batch_s": round(setup_s + first_s, 3),
                "batches_timed": len(timing.seconds),
                "train_images": sum(module.counts()["train"].values()),
                "on_disk_mb": sizes[backend],
            }
            log.info(
                "stream bench: %s, %d workers: %.0f img/s, first batch after %.2f s",
                backend,
                workers,
                row.throughput_img_s,
                setup_s + first_s,
            )
            rows.append(row)
    return rows
