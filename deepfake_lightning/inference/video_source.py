"""Decode frames with PyAV as a generator: files are sampled (N evenly spaced frames or every k-th), live
sources (stream URLs, capture devices) are read as a stream; either way only one frame is held at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

log = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp://", "rtmp://", "rtp://", "udp://", "tcp://", "srt://", "http://", "https://")
T = TypeVar("T")


class VideoError(ValueError):
    """A video that cannot be opened or decoded; the message names the source."""


class VideoLimitError(VideoError):
    """Frames larger than the pixel cap, or decoding past the wall-clock cap (the service answers 413)."""


@dataclass
class Frame:
    index: int  # position among decoded frames, 0-based
    time_s: float  # presentation time from the start of the stream
    image: np.ndarray  # HxWx3 uint8 RGB


@dataclass
class Sampling:
    """`every_k` takes frames 0, k, 2k...; else `num_frames` evenly spaced over a file of known length."""

    every_k: int | None = None
    num_frames: int | None = 16
    max_frames: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("every_k", "num_frames", "max_frames"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r}: expected null or an integer >= 1")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds={self.max_seconds!r}: expected null or a number > 0")


def is_live(source: str) -> bool:
    """Stream URLs and capture devices have no known length: they are read as a stream."""
    return source.lower().startswith(LIVE_SCHEMES) or source.startswith("/dev/")


def open_source(source: str, input_format: str | None = None, options: dict[str, str] | None = None) -> Any:
    import av  # lazy: optional extra [video]: PyAV is installed only with it

    if not is_live(source) and not Path(source).is_file():
        raise VideoError(f"{source}: video file not found")
    try:
        container = av.open(source, format=input_format, options=options or {}, timeout=30.0)
    except Exception as err:  # av.error.InvalidDataError, FileNotFoundError, HTTP errors...
        raise VideoError(f"{source}: cannot open video ({err.__class__.__name__}: {err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{source}: has no video stream")
    return container


def _frame_count(stream: Any) -> int | None:
    """Frames in the stream from the header, or estimated from duration x rate; None when unknown."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None and stream.average_rate:
        return max(1, round(float(stream.duration * stream.time_base) * float(stream.average_rate)))
    container_duration = getattr(stream.container, "duration", None)
    if container_duration and stream.average_rate:
        return max(1, round(container_duration / 1_000_000 * float(stream.average_rate)))
    return None


def _wanted(
    sampling: Sampling, live: bool, stream: Any, source: str, unknown_length_hint: str
) -> tuple[int, set[int] | None]:
    """(every_k, explicit frame indices or None)."""
    if sampling.every_k is not None:
        return sampling.every_k, None
    if live:
        log.info(
            "%s: live source, num_frames does not apply; scoring every frame (set every_k to thin)", source
        )
        return 1, None
    total = _frame_count(stream)
    if total is None:
        raise VideoError(
            f"{source}: frame count unknown, so num_frames cannot be spread; {unknown_length_hint}"
        )
    count = min(sampling.num_frames or total, total)
    return 1, {int(i) for i in np.linspace(0, total - 1, count).round()}


def iter_frames(
    source: str | Path,
    sampling: Sampling | None = None,
    input_format: str | None = None,
    live: bool | None = None,
    max_frame_pixels: int | None = None,
    deadline: float | None = None,
    options: dict[str, str] | None = None,
    unknown_length_hint: str = "set every_k instead",
    stop: threading.Event | None = None,
    decode_threads: int | None = None,
) -> Iterator[Frame]:
    """Yield sampled frames as RGB arrays, stopping at `max_frames` frames or `max_seconds` of stream time.

    `max_frame_pixels` refuses a stream whose frames are larger (from the header, before decoding, and again per
    decoded frame: the size may change mid-stream); `deadline` (a `time.monotonic()` value) stops decoding
    with `VideoLimitError` once passed, checked at every decoded frame, sampled or not. `options` go to FFmpeg's
    `avformat_open_input` (the service limits protocols); `unknown_length_hint` ends the message for a stream of
    unknown length, naming what the caller can do. Decoding ends quietly once `stop` is set (the service sets it
    when the client goes away), checked at every decoded frame. `decode_threads` caps FFmpeg's threads for this
    stream (None: FFmpeg's own choice), for callers that decode one video per process.
    """
    source = str(source)
    sampling = sampling or Sampling()
    live = is_live(source) if live is None else live
    container = open_source(source, input_format, options)
    try:
        stream = container.streams.video[0]
        _check_pixels(stream.width or 0, stream.height or 0, max_frame_pixels, source)
        stream.thread_type = "AUTO"
        if decode_threads is not None:
            stream.codec_context.thread_count = decode_threads
        every_k, indices = _wanted(sampling, live, stream, source, unknown_length_hint)
        last_wanted = max(indices) if indices else None
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        start_time: float | None = None
        emitted = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if stop is not None and stop.is_set():
                    return
                _check_pixels(frame.width, frame.height, max_frame_pixels, source)
                if deadline is not None and time.monotonic() > deadline:
                    raise VideoLimitError(
                        f"{source}: decoding stopped at frame {index}: wall-clock cap reached"
                    )
                time_s = float(frame.time) if frame.time is not None else index / rate
                start_time = time_s if start_time is None else start_time
                if sampling.max_seconds is not None and time_s - start_time > sampling.max_seconds:
                    break
                if (indices is None and index % every_k == 0) or (indices is not None and index in indices):
                    yield Frame(index, time_s - start_time, frame.to_ndarray(format="rgb24"))
                    emitted += 1
                    if sampling.max_frames is not None and emitted >= sampling.max_frames:
                        break
                if last_wanted is not None and index >= last_wanted:
                    break
        except VideoError:
            raise
        except Exception as err:  # av.error.InvalidDataError and friends, mid-stream
            if emitted == 0:
                raise VideoError(f"{source}: cannot decode video ({err.__class__.__name__}: {err})") from None
            log.warning(
                "%s: decoding stopped after %d frames (%s: %s)", source, emitted, type(err).__name__, err
            )
        if emitted == 0:
            raise VideoError(f"{source}: no frame could be decoded")
    finally:
        container.close()


def _check_pixels(width: int, height: int, limit: int | None, source: str) -> None:
    if limit is not None and width * height > limit:
        raise VideoLimitError(
            f"{source}: frames of {width}x{height} pixels exceed the limit of {limit} pixels"
        )


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Group a (possibly endless) iterable into lists of `size`: the only buffer the stream ever holds."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
