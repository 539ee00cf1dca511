"""`python -m deepfake_lightning.predict_video ckpt_path=MODEL input=VIDEO|URL [every_k=K | num_frames=N]`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.inference.from_config import detector_from_config
from deepfake_lightning.inference.video_source import Sampling, iter_frames
from deepfake_lightning.prediction.frames import frame_columns, plot_timeline, predict_frames
from deepfake_lightning.prediction.row_writer import RowWriter
from deepfake_lightning.utils.entry_schema import PredictVideoSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def _validate(cfg: DictConfig) -> Sampling:
    PredictVideoSettings.check(cfg)  # every key: utils/entry_schema.py
    return Sampling(cfg.every_k, cfg.num_frames, cfg.max_frames, cfg.max_seconds)


def predict_video(cfg: DictConfig) -> dict[str, Any]:
    sampling = _validate(cfg)
    detector = detector_from_config(cfg)
    output_dir = Path(cfg.output_dir)
    frames_path = output_dir / f"frames.{cfg.frames_format}"
    live = None if cfg.live == "auto" else bool(cfg.live)
    frames = iter_frames(str(cfg.input), sampling, input_format=cfg.input_format, live=live)
    start = time.perf_counter()
    with RowWriter(frames_path, frame_columns(detector)) as out:
        summary = predict_frames(detector, frames, cfg.batch_size, cfg.top_k, out.write, cfg.aggregate)
    seconds = time.perf_counter() - start
    result = {
        "input": str(cfg.input),
        **summary.result(detector.threshold),
        "seconds": seconds,
        "frames_output": str(frames_path),
        "model": detector.describe(),
    }
    (output_dir / "video.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    plot_timeline(summary, detector.threshold, output_dir / "timeline.png", title=Path(str(cfg.input)).name)
    log.info(
        "%s: %d frames in %.2f s, %s p_fake %s -> %s",
        cfg.input,
        summary.count,
        seconds,
        cfg.aggregate,
        result.get("p_fake_video"),
        result["label"],
    )
    return {"status": "ok", **{k: v for k, v in result.items() if k != "model"}}


@hydra_main("predict_video")
def main(cfg: DictConfig) -> None:
    run_task(predict_video, cfg)


if __name__ == "__main__":
    main()
