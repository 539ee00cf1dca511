"""`python -m deepfake_lightning.prepare input=VIDEOS_DIR [labels=FILE] output=DIR [frames=N]` (or `dfl-prepare`):
a folder of videos (FaceForensics++, Celeb-DF, DFDC or any folder with a labels CSV) -> a folder set of aligned
face crops that `data=folder data.root=DIR data.group_by=group` trains on. The work is
`deepfake_lightning.data.video_dataset`; docs/video_data.md has the layouts and the output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from deepfake_lightning.data.video_dataset import PrepareJob, prepare_dataset
from deepfake_lightning.data.video_dataset.run import build_pipeline
from deepfake_lightning.utils.config_schema import PrepareSettings
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


def job_from_config(cfg: DictConfig) -> Any:
    """The checked `PrepareJob` of a composed config: the schema, then the face pipeline it names (a bad
    detector option or a missing model file is one line here, before any video is opened)."""
    settings = PrepareSettings.check(cfg)
    job = PrepareJob(
        input=Path(settings.input),
        output=Path(settings.output),
        labels=Path(settings.labels) if settings.labels else None,
        layout=settings.layout,
        subset=settings.subset,
        frames=settings.frames,
        face=settings.face,
        image_format=settings.image_format,
        jpeg_quality=settings.jpeg_quality,
        workers=settings.workers,
        progress=settings.progress,
    )
    try:  # builds the detector's runtime once (model file, ONNX Runtime / OpenCV) before any video is opened
        build_pipeline(job.face).detect(np.zeros((64, 64, 3), np.uint8))
    except (ValueError, TypeError, RuntimeError) as err:  # RuntimeError: FaceDetectorError (no model file...)
        raise ConfigError(f"face={settings.face!r}: {err}") from None
    return job


def prepare(cfg: DictConfig) -> dict[str, Any]:
    summary = prepare_dataset(job_from_config(cfg))
    videos, frames = summary["videos"], summary["frames"]
    log.info(
        "prepare: %d of %d videos in %s (%d unreadable), %d frames sampled, %d faces, %d frames without a "
        "face; %d input problem line(s); summary in %s",
        videos["read"],
        videos["listed"],
        summary["output"],
        videos["unreadable"],
        frames["sampled"],
        frames["faces_found"],
        frames["no_face"],
        len(summary["input_problems"]),
        Path(summary["output"]) / "summary.json",
    )
    timing = summary["timing"]
    if timing["videos"]:
        log.info(
            "prepare timing (summed over workers): decode %s frames/s (%s sampled/s), detect+align %s frames/s",
            timing["decode_frames_per_s"],
            timing["sampled_frames_per_decode_s"],
            timing["detect_frames_per_s"],
        )
    return summary


@hydra_main("prepare")
def main(cfg: DictConfig) -> None:
    run_task(prepare, cfg)


if __name__ == "__main__":
    main()
