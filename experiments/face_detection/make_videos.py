"""Videos shaped like the ones `prepare` meets (H.264, 30 fps, 10 s, 720p or 1080p), for its decode-vs-detect
timing: one shared FFHQ face, scaled to a typical on-screen size, drifts over a textured background, with sensor-like
noise in every frame so the bit rate is a camera's (a few Mbit/s at 720p), not a slide show's.

    .venv/bin/python experiments/face_detection/make_videos.py OUT_DIR [--count 4] [--height 720]

Writes OUT_DIR/<name>.mp4 and OUT_DIR/labels.csv (video,label). The labels are arbitrary: only the timing counts.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ffhq_stylegan" / "real"


def frames(face: np.ndarray, width: int, height: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8), (5, 5), 0)
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_CUBIC)
    side = height // 3  # a face a third of the frame high: a talking head
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(count):
        frame = background.copy()
        x = int((width - side) * (0.3 + 0.4 * (0.5 + 0.5 * np.sin(i / 40))))
        y = int((height - side) * 0.4)
        frame[y : y + side, x : x + side] = face
        noise = rng.normal(0, 8, frame.shape)
        out.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return out


def encode(path: Path, images: list[np.ndarray], fps: int = 30) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = images[0].shape[1], images[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000 * images[0].shape[0] // 720  # 4 Mbit/s at 720p, 6 at 1080p
        stream.options = {"preset": "veryfast"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    width = args.height * 16 // 9
    photos = sorted(FACES.glob("*.jpg"))[: args.count]
    rows = []
    for k, photo in enumerate(photos):
        face = np.asarray(Image.open(photo).convert("RGB"))
        name = f"clip{k:02d}_{args.height}p.mp4"
        encode(args.out / name, frames(face, width, args.height, 30 * args.seconds, k))
        rows.append({"video": name, "label": "real" if k % 2 == 0 else "fake"})
    with (args.out / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["video", "label"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
