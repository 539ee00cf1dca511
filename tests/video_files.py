"""Small real videos for the prepare tests, encoded with PyAV from the shared face photos (../shared/data)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import LFW_DIR


def encode_video(path: Path, frames: list[np.ndarray], fps: int = 8) -> Path:
    """MPEG-4 in an .mp4 at a high bit rate, so a face stays a face after compression."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face_photos(cls: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` LFW face-swap photos of class `cls` (real/fake), 250x250 RGB, seeded choice."""
    files = sorted((LFW_DIR / cls).glob("*.jpg"))
    chosen = random.Random(seed).sample(files, count)
    return [np.asarray(Image.open(path).convert("RGB")) for path in chosen]


def face_clip(path: Path, face: np.ndarray, with_face: int = 6, without_face: int = 3) -> Path:
    """`with_face` frames of one face photo (shifted a pixel per frame, so frames differ), then a stretch of
    `without_face` frames of flat grey with noise: no face there."""
    rng = np.random.default_rng(0)
    frames = [np.roll(face, shift=i, axis=1) for i in range(with_face)]
    for _ in range(without_face):
        blank = np.full_like(face, 128)
        frames.append(np.clip(blank + rng.integers(-20, 20, face.shape), 0, 255).astype(np.uint8))
    return encode_video(path, frames)


def corrupt_video(path: Path, from_video: Path) -> Path:
    """The first 300 bytes of a real video: a header promising frames that are not there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(from_video.read_bytes()[:300])
    return path
