"""`python -m deepfake_lightning.predict ckpt_path=MODEL input=PATH|DIR|GLOB output=FILE.csv|.json`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.inference.batch_predict import COLUMNS, FACE_COLUMN, predict_files
from deepfake_lightning.inference.from_config import detector_from_config, validate_detector_config
from deepfake_lightning.inference.inputs import InputNotFoundError, expand_inputs
from deepfake_lightning.inference.row_writer import RowWriter, check_output_path
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def _validate(cfg: DictConfig) -> list[Path]:
    validate_detector_config(cfg)
    try:
        check_output_path(cfg.output)
        paths = expand_inputs(str(cfg.input))
    except (ValueError, InputNotFoundError) as err:
        raise ConfigError(str(err)) from None
    if not paths:
        raise ConfigError(f"input={cfg.input!r}: no image files found there")
    return paths


def predict(cfg: DictConfig) -> dict[str, Any]:
    paths = _validate(cfg)
    detector = detector_from_config(cfg)
    columns = [*COLUMNS, FACE_COLUMN] if cfg.face_crop else list(COLUMNS)
    counts = {"fake": 0, "real": 0, "error": 0}
    start = time.perf_counter()
    with RowWriter(cfg.output, columns) as out:
        for row in predict_files(detector, paths, cfg.batch_size, cfg.num_workers, cfg.progress):
            out.write(row)
            counts[row["label"] or "error"] += 1
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
