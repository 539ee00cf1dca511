"""The `faces` task: face detection (and detection + alignment) per image at the detector's working size.

Each bench image is resized so its longer side is `image_size` (640: the size CenterFace sees by default, and a
typical video frame), then every detector runs on those images one at a time, in this process, as `prepare`
and predict's face crop run them. The baseline is OpenCV's Haar cascade; CenterFace is timed on each runtime
(ONNX Runtime, OpenCV dnn). `detect+align` adds the aligned crop of every face found (`FacePipeline.crops`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from deepfake_lightning.bench.rows import PeakMemory, Row, make_row, time_calls
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.index import Sample
from deepfake_lightning.faces import Alignment, FacePipeline, build_detector

log = logging.getLogger(__name__)


def _at_size(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    factor = side / max(height, width)
    size = (round(width * factor), round(height * factor))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA)


def bench_faces(samples: Sequence[Sample], cfg: Mapping[str, Any]) -> list[Row]:
    """Rows for every detector in `cfg["detectors"]` (name[:backend]), stages detect and detect+align."""
    side = int(cfg["image_size"])
    images = [_at_size(load_rgb(path), side) for path, _ in samples[: int(cfg["n_images"])]]
    alignment = Alignment(cfg["alignment"], float(cfg["scale"]), int(cfg["size"]))
    rows = []
    for entry in cfg["detectors"]:
        name, _, backend = str(entry).partition(":")
        detector = build_detector(name, **({"backend": backend} if backend else {}))
        pipeline = FacePipeline(detector, alignment)
        label = f"{name}_{backend}" if backend else name
        found = sum(bool(detector.detect(image)) for image in images)  # also the warm-up
        for stage, step in (("detect", detector.detect), ("detect+align", pipeline.crops)):
            cycle = itertools.cycle(images)
            with PeakMemory(torch.device("cpu")) as memory:
                timing = time_calls(
                    lambda step=step, cycle=cycle: step(next(cycle)),
                    items=1,
                    iters=int(cfg["iters"]),
                    warmup=1,
                )
            row = make_row(
                "faces",
                stage,
                f"{label}_baseline" if name == "haar" else label,
                timing,
                memory,
                device="cpu",
                precision="fp32",
                batch_size=1,
                image_size=side,
                workers=0,
                threads=torch.get_num_threads() if backend != "opencv" else cv2.getNumThreads(),
            )
            row.extra.update(images=len(images), images_with_a_face=found)
            rows.append(row)
            log.info("faces %s %s: %.1f img/s", label, stage, row.throughput_img_s)
    return rows
