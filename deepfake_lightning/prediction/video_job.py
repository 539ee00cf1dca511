"""A `predict_video` run: the configured detector scores a video's sampled frames into a frame file, the video's
summary (`video.json`) and its timeline plot (`timeline.png`).

The entry point (`deepfake_lightning/predict_video.py`) only validates its config; the frames are scored by
`frames.py`'s loop, the one the service's video endpoint uses too.
"""

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

log = logging.getLogger("deepfake_lightning.predict_video")  # the command's log lines, as before


def predict_video_job(cfg: DictConfig, sampling: Sampling) -> dict[str, Any]:
    """Score `cfg.input`'s frames as `sampling` picks them; the video's summary (without the model record)."""
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
