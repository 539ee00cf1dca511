"""`python -m deepfake_lightning.robustness ckpt_path=... [data=...]`: the test split under a corruption grid.

The grid is ``conf/corruptions`` (override e.g. ``corruptions.jpeg=[50]`` or ``~corruptions.noise``); the
checkpoint's preprocessing and its bundle's validation-fitted temperature and threshold are applied unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.evaluation.eval_setup import resolve_device, start_evaluation
from deepfake_lightning.evaluation.robustness import evaluate_robustness, write_robustness
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task


def robustness(cfg: DictConfig) -> dict[str, Any]:
    model, output_dir = start_evaluation(cfg)  # with the calibration of calibration.path (auto: its bundle's)
    datamodule = instantiate(cfg.data)
    calibration = model.calibration_record()
    rows = evaluate_robustness(
        model.module,
        datamodule,
        OmegaConf.to_container(cfg.corruptions, resolve=True),
        calibration["temperature"],
        calibration["threshold"],
        resolve_device(cfg.get("device")),
        int(cfg.get("n_bootstrap", 1000)),
        int(cfg.seed),
    )
    write_robustness(rows, output_dir, calibration, int(cfg.seed))
    (output_dir / "run_summary.json").write_text(json.dumps({"status": "ok"}, indent=2))
    return {"status": "ok", "results": rows}


@hydra_main("robustness")
def main(cfg: DictConfig) -> None:
    run_task(robustness, cfg)


if __name__ == "__main__":
    main()
