"""A `predict` run: the configured detector scores image files into one output file, in one process or as a
distributed `trainer.predict` job.

The entry point (`deepfake_lightning/predict.py`) only validates its config and lists the files; what runs is
here: the detector is built from the config (`quantize=int8`: the cached int8 export of the checkpoint,
`inference/int8_cache.py`), then either scored in this process (`files.py`: decode workers beside the model) or,
with a `trainer` node (`trainer=ddp_cpu`, `trainer=ddp ...`), on every rank with the shards merged on rank 0
(`distributed.py`), where each rank builds its own detector on its own device.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.from_config import detector_from_config
from deepfake_lightning.inference.int8_cache import int8_config
from deepfake_lightning.prediction.distributed import predict_distributed
from deepfake_lightning.prediction.files import (
    auto_decode,
    file_columns,
    loader_sizes,
    predict_files,
    write_scored_rows,
)

log = logging.getLogger("deepfake_lightning.predict")  # the predict command's log lines, as before the move


def detector_builder(cfg: DictConfig, paths: list[Path]) -> Callable[[str | None], BaseDetector]:
    """`build(device)`: the configured detector (int8: the cached quantized model) on `device` (None: cfg's)."""

    def build(device: str | None = None) -> BaseDetector:
        run = int8_config(cfg, paths) if cfg.get("quantize") else cfg
        if device is not None:
            run = run.copy()
            with open_dict(run):
                run.device = device
        return detector_from_config(run)

    return build


def score_to_file(cfg: DictConfig, build: Callable[[str | None], BaseDetector], paths: list[Path]) -> dict:
    """Label counts of the rows written to `cfg.output`; on ranks > 0 of a distributed job, `{"rank": r}`."""
    if OmegaConf.select(cfg, "trainer") is not None:
        result = predict_distributed(
            cfg.trainer, build, paths, cfg.output, file_columns, cfg.batch_size, cfg.num_workers, cfg.progress
        )
        return result if "rank" in result else {key: result[key] for key in ("fake", "real", "error")}
    detector = build(None)
    decode_in = auto_decode(detector) if cfg.decode_in == "auto" else cfg.decode_in
    batch_size, workers = loader_sizes(detector, cfg.batch_size, cfg.num_workers, decode_in)
    log.info("batch_size=%d, num_workers=%d (%s)", batch_size, workers, decode_in)
    rows = predict_files(detector, paths, batch_size, workers, cfg.progress, decode_in)
    return write_scored_rows(cfg.output, file_columns(detector), rows)


def predict_job(cfg: DictConfig, paths: list[Path]) -> dict[str, Any]:
    """Score `paths` as `cfg` says; the run's summary (counts, seconds, images/s, output), or the rank's."""
    start = time.perf_counter()
    counts = score_to_file(cfg, detector_builder(cfg, paths), paths)
    if "rank" in counts:  # ranks > 0: rank 0 reports
        return counts
    seconds = time.perf_counter() - start
    rate = len(paths) / seconds if seconds > 0 else float("inf")
    log.info("%d files in %.2f s (%.1f images/s): %s -> %s", len(paths), seconds, rate, counts, cfg.output)
    return {
        "status": "ok",
        "n": len(paths),
        **counts,
        "seconds": seconds,
        "images_per_s": rate,
        "output": cfg.output,
    }
