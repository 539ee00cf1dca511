"""`python -m deepfake_lightning.predict ckpt_path=MODEL input=PATH|DIR|GLOB output=FILE.csv|.json`.

One process by default (DataLoader workers decode while the model scores); with `trainer=ddp_cpu` or
`trainer=ddp ...` a distributed `trainer.predict` job whose rank shards are merged into one file
(`prediction/distributed.py`). `quantize=int8` runs a cached int8 export of a checkpoint.
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
from deepfake_lightning.inference.inputs import InputNotFoundError, expand_inputs
from deepfake_lightning.inference.int8_cache import int8_config
from deepfake_lightning.prediction.distributed import predict_distributed
from deepfake_lightning.prediction.files import (
    auto_decode,
    file_columns,
    loader_sizes,
    predict_files,
    write_scored_rows,
)
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.entry_schema import PredictSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def _validate(cfg: DictConfig) -> list[Path]:
    PredictSettings.check(cfg)  # every key: utils/entry_schema.py
    try:
        paths = expand_inputs(str(cfg.input))
    except InputNotFoundError as err:
        raise ConfigError(str(err)) from None
    if not paths:
        raise ConfigError(f"input={cfg.input!r}: no image files found there")
    return paths


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


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Single process (the default), or `trainer=...`: a distributed `trainer.predict` job, merged on rank 0."""
    paths = _validate(cfg)
    build = detector_builder(cfg, paths)
    start = time.perf_counter()
    if OmegaConf.select(cfg, "trainer") is not None:
        result = predict_distributed(
            cfg.trainer, build, paths, cfg.output, file_columns, cfg.batch_size, cfg.num_workers, cfg.progress
        )
        if "rank" in result:  # ranks > 0: rank 0 reports
            return result
        counts = {key: result[key] for key in ("fake", "real", "error")}
    else:
        detector = build()
        decode_in = auto_decode(detector) if cfg.decode_in == "auto" else cfg.decode_in
        batch_size, workers = loader_sizes(detector, cfg.batch_size, cfg.num_workers, decode_in)
        log.info("batch_size=%d, num_workers=%d (%s)", batch_size, workers, decode_in)
        rows = predict_files(detector, paths, batch_size, workers, cfg.progress, decode_in)
        counts = write_scored_rows(cfg.output, file_columns(detector), rows)
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


@hydra_main("predict")
def main(cfg: DictConfig) -> None:
    run_task(predict, cfg)


if __name__ == "__main__":
    main()
