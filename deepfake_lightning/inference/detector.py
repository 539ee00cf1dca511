"""`Detector`: one model bundle (a `.ckpt`, an exported `.onnx`, or a bundle manifest) -> calibrated p_fake and a label.

    detector = Detector.load("logs/train/runs/X/checkpoints/best.ckpt")
    [pred] = detector.predict("photo.jpg")          # pred.p_fake, pred.label ("fake" | "real")

Preprocessing is rebuilt from the model's bundle with `build_eval_transform`, never re-implemented; the
temperature and threshold are the bundle's (fitted on validation when the run calibrated), opened by
`deepfake_lightning.bundle.open_model` like everywhere else.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lightning.bundle import BundleError, ModelBundle, open_model
from deepfake_lightning.data.images import MAX_PIXELS
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.inference.backends import BACKENDS, Backend, OnnxBackend, TorchBackend
from deepfake_lightning.inference.export_model import export_onnx
from deepfake_lightning.inference.faces import FaceCropper
from deepfake_lightning.inference.inputs import DEFAULT_MIN_SIZE, as_list, as_rgb_array, check_min_size

FAKE, REAL = "fake", "real"
DESCRIBED = (  # bundle fields an answer may show (the card has the rest); paths are cut to names by the service
    "source", "manifest", "format", "sha256", "preprocessing", "temperature", "threshold", "threshold_rule",
    "calibration_source", "checkpoint_threshold", "attention", "versions",
)  # fmt: skip
Inputs = torch.Tensor | Sequence[torch.Tensor]


@dataclass
class Prediction:
    """One image's result; `face` is "found"/"not_found" with face_crop on, else None."""

    p_fake: float
    label: str
    face: str | None = None
    attention: np.ndarray | None = None

    def to_dict(self, attention: bool = False) -> dict[str, Any]:
        record: dict[str, Any] = {"p_fake": self.p_fake, "label": self.label}
        if self.face is not None:
            record["face"] = self.face
        if attention and self.attention is not None:
            record["attention"] = self.attention.tolist()
        return record


@dataclass
class BatchScores:
    p_fake: np.ndarray
    attention: np.ndarray | None = None  # Bxhxw in [0, 1]


class ImagePreparer:
    """RGB array -> (one CHW tensor per distinct preprocessing, face status). Picklable for DataLoader workers.

    Too-small policy: the shorter side of the *original* image must be >= `min_size`, else `ImageTooSmallError`.
    """

    def __init__(
        self,
        transforms: Sequence[Callable[[np.ndarray], torch.Tensor]],
        min_size: int,
        faces: FaceCropper | None,
    ) -> None:
        self.transforms = list(transforms)
        self.min_size = min_size
        self.faces = faces

    def __call__(self, image: np.ndarray, name: str) -> tuple[tuple[torch.Tensor, ...], str | None]:
        check_min_size(image, self.min_size, name)
        face = None
        if self.faces is not None:
            image, face = self.faces(image)
        return tuple(transform(image) for transform in self.transforms), face


def stack_inputs(prepared: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Per-image tuples of CHW tensors (one per preprocessing) -> one BxCxHxW batch per preprocessing."""
    return [torch.stack(column) for column in zip(*prepared, strict=True)]


def label_of(p_fake: float, threshold: float) -> str:
    return FAKE if p_fake >= threshold else REAL


class BaseDetector:
    """What `Detector` and `EnsembleDetector` share: `preparer`, `threshold`, `score()` and `predict()`."""

    preparer: ImagePreparer
    threshold: float
    max_pixels: int = MAX_PIXELS

    def score(self, inputs: Inputs, attention: bool = False) -> BatchScores:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def labels(self, p_fake: np.ndarray) -> list[str]:
        return [label_of(float(p), self.threshold) for p in p_fake]

    def prepare(self, image: Any, name: str) -> tuple[tuple[torch.Tensor, ...], str | None]:
        return self.preparer(as_rgb_array(image, name, self.max_pixels), name)

    def predict(self, images: Any, attention: bool = False, batch_size: int = 32) -> list[Prediction]:
        """Paths, PIL images, arrays or bytes (one or a list) -> one `Prediction` each, in order.

        Raises `BadImageError` (naming the input) on the first unreadable or too-small image; the batch CLI
        records such errors per row instead.
        """
        items = as_list(images)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):  # prepared tensors of one batch at a time
            chunk = [
                self.prepare(image, str(image) if isinstance(image, (str, Path)) else f"<input {start + i}>")
                for i, image in enumerate(items[start : start + batch_size])
            ]
            scores = self.score(stack_inputs([tensors for tensors, _ in chunk]), attention=attention)
            for j, (_, face) in enumerate(chunk):
                p = float(scores.p_fake[j])
                amap = scores.attention[j] if scores.attention is not None else None
                results.append(Prediction(p, label_of(p, self.threshold), face, amap))
        return results


def _first(inputs: Inputs) -> torch.Tensor:
    return inputs if isinstance(inputs, torch.Tensor) else inputs[0]


class Detector(BaseDetector):
    """A single model behind a `Backend`; p_fake = sigmoid(logit / temperature)."""

    def __init__(
        self,
        backend: Backend,
        bundle: ModelBundle,
        face_crop: bool = False,
        min_size: int = DEFAULT_MIN_SIZE,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.backend = backend
        self.bundle = bundle
        self.threshold = bundle.threshold
        self.max_pixels = max_pixels
        self.face_crop = face_crop
        self.transform = build_eval_transform(**bundle.preprocessing)
        self.preparer = ImagePreparer([self.transform], min_size, FaceCropper() if face_crop else None)

    @property
    def temperature(self) -> float:
        return self.bundle.temperature

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str = "auto",
        calibration: str | Path | None = "auto",
        threshold: float | None = None,
        device: str = "cpu",
        onnx_sessions: int = 1,
        **options: Any,
    ) -> Detector:
        """A `.ckpt` -> torch (or ONNX Runtime via an in-memory export); an `.onnx` -> ONNX Runtime; a bundle
        manifest (`bundle.json`) -> whichever its weights are. `calibration` and `threshold` as in `open_model`.

        `onnx_sessions`: 1 = one ONNX Runtime session on every core (lowest single-image latency); 0 = one
        single-thread session per core, each scoring a slice of a batch (the faster path for batches on CPU).
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: allowed {BACKENDS}")
        if Path(path).suffix in (".pt", ".torchscript"):
            raise BundleError(
                f"{path}: TorchScript exports are for deployment elsewhere; load the .ckpt or an exported .onnx"
            )
        model = open_model(path, calibration, threshold)
        if model.format == "onnx":
            if backend == "torch":
                raise BundleError(f"{model.path}: an ONNX model runs with backend=onnx (or auto), not torch")
            runtime: Backend = OnnxBackend(model.path, device, sessions=onnx_sessions)
        elif model.module is None:
            raise BundleError(
                f"{model.path}: a {model.format} export is for deployment elsewhere; load the .ckpt"
            )
        elif backend == "onnx":
            runtime = _onnx_from_module(model.module, device, onnx_sessions)
        else:
            runtime = TorchBackend(model.net, device)
        return cls(runtime, model.bundle, **options)

    def score(self, inputs: Inputs, attention: bool = False) -> BatchScores:
        logits, amap = self.backend(_first(inputs))
        p_fake = np.asarray(apply_temperature(logits, self.bundle.temperature), dtype=np.float64)
        maps = amap[:, 0] if (attention and amap is not None) else None
        return BatchScores(p_fake, maps)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "single",
            "backend": self.backend.name,
            "face_crop": self.face_crop,
            "min_size": self.preparer.min_size,
            **{k: v for k, v in self.bundle.to_dict().items() if k in DESCRIBED},
        }


def _onnx_from_module(module: Any, device: str, sessions: int = 1) -> OnnxBackend:
    """backend=onnx on a checkpoint: export to a temporary file, load it into ONNX Runtime, delete the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(
            module.net, Path(tmp) / "model.onnx", int(module.hparams["preprocessing"]["image_size"])
        )
        return OnnxBackend(path, device, sessions=sessions)
