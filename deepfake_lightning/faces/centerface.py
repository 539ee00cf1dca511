"""CenterFace (a MobileNetV2 CNN, 1.8 M parameters): face boxes, scores and 5 landmarks in one pass.

The network predicts, on a grid of stride 4, a face-centre heatmap (after a sigmoid), the log box size, the
sub-cell offset of the centre and the 5 landmarks relative to the box. `decode()` turns the cells above the
score threshold into boxes and landmarks, and non-maximum suppression (OpenCV's `NMSBoxes`) keeps one box per
face. Input: RGB in 0-255 (no mean, no scaling), both sides a multiple of 32; the image is shrunk so its longer
side is at most `detect_side`, then zero-padded on the right and bottom, so coordinates map back by one factor.

Two runtimes read the same file: ONNX Runtime (`backend=onnxruntime`, the graph made shape-dynamic) and
OpenCV's dnn module (`backend=opencv`, needs nothing beyond OpenCV). `auto` picks ONNX Runtime when the `onnx`
and `onnxruntime` packages are installed. tests/test_faces.py checks that both give the same faces.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lightning.faces.base import FaceDetectorError, downscale
from deepfake_lightning.faces.centerface_model import checked_model_path, dynamic_model
from deepfake_lightning.faces.types import Face

BACKENDS = ("auto", "onnxruntime", "opencv")
STRIDE = 4  # heatmap cell size in input pixels
MULTIPLE = 32  # the network's total downsampling: input sides must be multiples of it


def _has_onnxruntime() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def decode(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    threshold: float,
    nms_iou: float,
) -> list[Face]:
    """One image's raw outputs (1xhxw, 2xhxw, 2xhxw, 10xhxw) -> faces in network-input pixels, best first.

    Channel order (from the model's head): scale and offset are (y, x); landmarks are (y, x) pairs, each a
    fraction of the box height/width from the box's top-left corner.
    """
    rows, cols = np.nonzero(heatmap[0] > threshold)
    if rows.size == 0:
        return []
    scores = heatmap[0, rows, cols]
    heights = np.exp(scale[0, rows, cols]) * STRIDE
    widths = np.exp(scale[1, rows, cols]) * STRIDE
    centre_y = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    x1, y1 = centre_x - widths / 2, centre_y - heights / 2
    keep = cv2.dnn.NMSBoxes(
        np.stack([x1, y1, widths, heights], axis=1).tolist(), scores.tolist(), threshold, nms_iou
    )
    faces = []
    for i in np.ravel(keep).astype(int):
        points = landmarks[:, rows[i], cols[i]].reshape(5, 2)  # (dy, dx) fractions
        marks = np.stack([x1[i] + points[:, 1] * widths[i], y1[i] + points[:, 0] * heights[i]], axis=1)
        box = (float(x1[i]), float(y1[i]), float(x1[i] + widths[i]), float(y1[i] + heights[i]))
        faces.append(Face(box, float(scores[i]), marks.astype(np.float64)))
    return sorted(faces, key=lambda face: -face.score)


class CenterFaceDetector:
    """`detect(rgb) -> [Face]` with CenterFace; boxes clipped to the image.

    `threshold` on the heatmap score (0.5: the model's usual operating point), `nms_iou` for suppression,
    `detect_side` the longest side the network sees (larger finds smaller faces, costs quadratically).
    `threads` bounds the runtime's threads (0: the runtime's default). Picklable: the session is built lazily
    in each process.
    """

    name = "centerface"
    has_landmarks = True

    def __init__(
        self,
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        detect_side: int = 640,
        backend: str = "auto",
        model_path: str | Path | None = None,
        threads: int = 0,
    ) -> None:
        if not 0 < threshold < 1 or not 0 < nms_iou <= 1:
            raise ValueError(f"centerface: threshold={threshold} and nms_iou={nms_iou} must be in (0, 1)")
        if detect_side < MULTIPLE:
            raise ValueError(f"centerface: detect_side={detect_side}: expected >= {MULTIPLE}")
        if backend not in BACKENDS:
            raise ValueError(f"centerface: backend={backend!r}: expected one of {list(BACKENDS)}")
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.detect_side = detect_side
        self.backend = ("onnxruntime" if _has_onnxruntime() else "opencv") if backend == "auto" else backend
        self.model_path = checked_model_path(model_path)
        self.threads = threads
        self._runner: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_runner": None}

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._runner is None:
            self._runner = self._onnxruntime() if self.backend == "onnxruntime" else self._opencv()
        return self._runner(batch)

    def _onnxruntime(self) -> Any:
        import onnxruntime as ort  # lazy: optional extra [export]: ONNX Runtime is installed only with it

        options = ort.SessionOptions()
        options.log_severity_level = 3  # no per-session warnings on stderr
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            dynamic_model(str(self.model_path)), options, providers=["CPUExecutionProvider"]
        )
        input_name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {input_name: batch})

    def _opencv(self) -> Any:
        """OpenCV's dnn, one network per input shape: a network run once at one size and then fed another
        gives wrong outputs (its transposed convolutions keep the first shape; measured with OpenCV 4.14)."""
        nets: dict[tuple[int, ...], Any] = {}
        if self.threads:
            cv2.setNumThreads(self.threads)

        def run(batch: np.ndarray) -> list[np.ndarray]:
            net = nets.get(batch.shape)
            if net is None:
                if len(nets) >= 4:  # a few sizes at a time (a video has one); rebuilding costs ~50 ms
                    nets.pop(next(iter(nets)))
                net = nets[batch.shape] = self._read_opencv()
            net.setInput(batch)
            return list(net.forward(net.getUnconnectedOutLayersNames()))

        return run

    def _read_opencv(self) -> Any:
        try:
            return cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as err:
            raise FaceDetectorError(f"{self.model_path}: OpenCV cannot read it ({err})") from None

    def detect(self, image: np.ndarray) -> list[Face]:
        small, (fx, fy) = downscale(image, self.detect_side)
        height, width = small.shape[:2]
        padded = np.zeros(
            (math.ceil(height / MULTIPLE) * MULTIPLE, math.ceil(width / MULTIPLE) * MULTIPLE, 3), np.float32
        )
        padded[:height, :width] = small
        outputs = self._run(np.ascontiguousarray(padded.transpose(2, 0, 1)[None]))
        faces = decode(*(out[0] for out in outputs), self.threshold, self.nms_iou)
        full_h, full_w = image.shape[:2]
        scale = np.array([1 / fx, 1 / fy])
        result = []
        for face in faces:
            x1, y1, x2, y2 = face.box
            box = (
                max(0.0, x1 / fx), max(0.0, y1 / fy), min(float(full_w), x2 / fx), min(float(full_h), y2 / fy)
            )  # fmt: skip
            result.append(Face(box, face.score, face.landmarks * scale))
        return result

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "nms_iou": self.nms_iou,
            "detect_side": self.detect_side,
            "backend": self.backend,
        }
