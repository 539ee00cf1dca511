"""`python -m deepfake_lightning.predict ckpt_path=MODEL input=PATH|DIR|GLOB output=FILE.csv|.json`.

One process by default (decode workers beside the model); with `trainer=ddp_cpu` or `trainer=ddp ...` a
distributed `trainer.predict` job whose rank shards are merged into one file; `quantize=int8` runs a cached
int8 export of a checkpoint. This entry point validates the config and lists the files; the run itself is
`prediction/file_job.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.inference.inputs import InputNotFoundError, expand_inputs
from deepfake_lightning.prediction.file_job import predict_job
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.entry_schema import PredictSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task


def _validate(cfg: DictConfig) -> list[Path]:
    PredictSettings.check(cfg)  # every key: utils/entry_schema.py
    try:
        paths = expand_inputs(str(cfg.input))
    except InputNotFoundError as err:
        raise ConfigError(str(err)) from None
    if not paths:
        raise ConfigError(f"input={cfg.input!r}: no image files found there")
    return paths


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Single process (the default), or `trainer=...`: a distributed `trainer.predict` job, merged on rank 0."""
    return predict_job(cfg, _validate(cfg))


@hydra_main("predict")
def main(cfg: DictConfig) -> None:
    run_task(predict, cfg)


if __name__ == "__main__":
    main()
