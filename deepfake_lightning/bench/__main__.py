"""`python -m deepfake_lightning.bench [quick=true] [output_dir=DIR]`: writes bench.json and bench.md."""

from __future__ import annotations

from omegaconf import DictConfig

from deepfake_lightning.bench.run import run_bench
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task


@hydra_main("bench")
def main(cfg: DictConfig) -> None:
    run_task(run_bench, cfg)


if __name__ == "__main__":
    main()
