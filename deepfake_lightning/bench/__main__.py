"""`python -m deepfake_lightning.bench [quick=true] [output_dir=DIR]`: writes bench.json and bench.md."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepfake_lightning.bench.run import run_bench
from deepfake_lightning.utils.task import run_task


@hydra.main(version_base="1.3", config_path="../../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    run_task(run_bench, cfg)


if __name__ == "__main__":
    main()
