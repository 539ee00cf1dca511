"""`python -m deepfake_lightning.predict_video ckpt_path=MODEL input=VIDEO|URL [every_k=K | num_frames=N]`.

This entry point validates the config; the run itself is `prediction/video_job.py`.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.inference.video_source import Sampling
from deepfake_lightning.prediction.video_job import predict_video_job
from deepfake_lightning.utils.entry_schema import PredictVideoSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task


def _validate(cfg: DictConfig) -> Sampling:
    PredictVideoSettings.check(cfg)  # every key: utils/entry_schema.py
    return Sampling(cfg.every_k, cfg.num_frames, cfg.max_frames, cfg.max_seconds)


def predict_video(cfg: DictConfig) -> dict[str, Any]:
    return predict_video_job(cfg, _validate(cfg))


@hydra_main("predict_video")
def main(cfg: DictConfig) -> None:
    run_task(predict_video, cfg)


if __name__ == "__main__":
    main()
