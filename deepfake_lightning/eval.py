"""`python -m deepfake_lightning.eval ckpt_path=... [data=...]`: test a checkpoint on any data config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.callbacks import SkippedImagesCallback
from deepfake_lightning.checkpoints import load_detector_module
from deepfake_lightning.evaluation.test_outputs import write_test_outputs
from deepfake_lightning.utils.config_validation import validate_data, validate_run
from deepfake_lightning.utils.task import run_task, seed


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    validate_data(cfg)
    validate_run(cfg)
    seed(cfg)
    output_dir = Path(cfg.paths.output_dir)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    module = load_detector_module(cfg.ckpt_path)
    datamodule = instantiate(cfg.data)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[SkippedImagesCallback(str(output_dir))])
    trainer.test(module, datamodule=datamodule)
    extra = {"checkpoint": str(cfg.ckpt_path), "model": module.size(), "data": datamodule.counts()}
    results = write_test_outputs(module, output_dir, extra)
    (output_dir / "run_summary.json").write_text(json.dumps({"status": "ok"}, indent=2))
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
