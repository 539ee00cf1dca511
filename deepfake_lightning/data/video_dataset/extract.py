"""One video -> aligned face crops: N evenly spaced frames decoded with PyAV, the largest face of each detected
and aligned by the shared face pipeline (`deepfake_lightning.faces`), one image file per frame with a face.

Decoding, detection and writing are timed separately, so the summary can say which one bounds a run (decoding
reads every frame up to the last sampled one; detection sees only the sampled frames).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lightning.data.video_dataset.listing import CLASS_NAMES, VideoItem
from deepfake_lightning.inference.video_source import Sampling, VideoError, iter_frames

log = logging.getLogger(__name__)


@dataclass
class VideoResult:
    """What preparing one video gave: its crops (`frames`: [frame index, file relative to the output]), or the
    reason it could not be read, and the counts and seconds the summary adds up."""

    video: str
    label: int
    status: str  # "done" | "unreadable"
    reason: str = ""
    frames: list[tuple[int, str]] = field(default_factory=list)
    frames_sampled: int = 0
    frames_decoded: int = 0  # every frame decoded to reach the sampled ones
    no_face: int = 0
    decode_s: float = 0.0
    detect_s: float = 0.0
    write_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoResult:
        data = dict(data)
        data["frames"] = [(int(index), str(file)) for index, file in data.get("frames", [])]
        return cls(**data)


def crop_folder(item: VideoItem) -> str:
    """`fake/<video id>`: the class folder `data=folder` reads, then the video's own folder."""
    return f"{CLASS_NAMES[item.label]}/{item.video}"


def write_image(path: Path, rgb: np.ndarray, image_format: str, jpeg_quality: int) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else []
    ok, encoded = cv2.imencode(f".{image_format}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the crop as {image_format}")
    path.write_bytes(encoded.tobytes())


def prepare_video(
    item: VideoItem,
    output: Path,
    pipeline: Any,
    frames: int,
    image_format: str = "png",
    jpeg_quality: int = 95,
    decode_threads: int | None = 1,
) -> VideoResult:
    """Crops of `item` under `output/<class>/<video id>/`; a video that cannot be decoded is a result with its
    reason, never an exception. `pipeline` is a `FacePipeline` (`largest(rgb) -> FaceCrop | None`)."""
    result = VideoResult(item.video, item.label, "done")
    rel_folder = crop_folder(item)
    folder = output / rel_folder
    shutil.rmtree(folder, ignore_errors=True)  # what a killed run left of this video
    try:
        if item.path.stat().st_size == 0:
            return _failed(result, folder, f"{item.path}: zero-length file")
    except OSError as err:
        return _failed(result, folder, f"{item.path}: cannot read ({err.strerror})")
    folder.mkdir(parents=True, exist_ok=True)
    stream = iter_frames(item.path, Sampling(num_frames=frames), decode_threads=decode_threads)
    clock = time.perf_counter
    try:
        while True:
            start = clock()
            frame = next(stream, None)
            result.decode_s += clock() - start
            if frame is None:
                break
            result.frames_sampled += 1
            result.frames_decoded = frame.index + 1
            start = clock()
            crop = pipeline.largest(frame.image)
            result.detect_s += clock() - start
            if crop is None:
                result.no_face += 1
                continue
            start = clock()
            name = f"{frame.index:06d}.{image_format}"
            write_image(folder / name, crop.image, image_format, jpeg_quality)
            result.write_s += clock() - start
            result.frames.append((frame.index, f"{rel_folder}/{name}"))
    except VideoError as err:
        return _failed(result, folder, str(err))
    except Exception as err:  # a frame OpenCV or the detector chokes on: this video only, never the run
        return _failed(result, folder, f"{item.path}: {err.__class__.__name__}: {err}")
    finally:
        stream.close()
    if not result.frames:
        folder.rmdir()
    return result


def _failed(result: VideoResult, folder: Path, reason: str) -> VideoResult:
    shutil.rmtree(folder, ignore_errors=True)
    result.status, result.reason, result.frames = "unreadable", reason, []
    return result
