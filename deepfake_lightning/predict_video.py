"""`python -m deepfake_lightning.predict_video ckpt_path=MODEL input=VIDEO|URL [every_k=K | num_frames=N]`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.inference.from_config import detector_from_config, validate_detector_config
from deepfake_lightning.inference.row_writer import RowWriter
from deepfake_lightning.inference.video_predict import FRAME_COLUMNS, plot_timeline, predict_frames
from deepfake_lightning.inference.video_source import Sampling, is_live, iter_frames
from deepfake_lightning.utils.config_schema import FrameAggregation
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def _sampling(cfg: DictConfig) -> Sampling:
    try:
        return Sampling(cfg.every_k, cfg.num_frames, cfg.max_frames, cfg.max_seconds)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _validate(cfg: DictConfig) -> Sampling:
    sampling = _sampling(cfg)
    validate_detector_config(cfg)
    if cfg.frames_format not in ("csv", "json"):
        raise ConfigError(f"frames_format={cfg.frames_format!r}: expected csv or json")
    if cfg.live not in ("auto", True, False):
        raise ConfigError(f"live={cfg.live!r}: expected auto, true or false")
    if cfg.live is not True and not is_live(str(cfg.input)) and not Path(str(cfg.input)).is_file():
        raise ConfigError(
            f"input={cfg.input!r}: video file not found (stream URLs and /dev/* devices are read live)"
        )
    FrameAggregation.check({"aggregate": cfg.aggregate, "top_k": cfg.top_k})  # eval's rule and its check
    return sampling


def predict_video(cfg: DictConfig) -> dict[str, Any]:
    sampling = _validate(cfg)
    detector = detector_from_config(cfg)
    output_dir = Path(cfg.output_dir)
    frames_path = output_dir / f"frames.{cfg.frames_format}"
    live = None if cfg.live == "auto" else bool(cfg.live)
    frames = iter_frames(str(cfg.input), sampling, input_format=cfg.input_format, live=live)
    columns = [c for c in FRAME_COLUMNS if c != "face" or cfg.face_crop]
    start = time.perf_counter()
    with RowWriter(frames_path, columns) as out:
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
