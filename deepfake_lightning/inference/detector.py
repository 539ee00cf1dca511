"""`Detector`: one model bundle (a `.ckpt`, an exported `.onnx`, or a bundle manifest) -> calibrated p_fake and a label.

    detector = Detector.load("logs/train/runs/X/checkpoints/best.ckpt")
    [pred] = detector.predict("photo.jpg")          # pred.p_fake, pred.label ("fake" | "real")

Preprocessing is rebuilt from the model's bundle with `build_eval_transform`, never re-implemented; the
temperature and threshold are the bundle's (fitted on validation when the run calibrated), opened by
`deepfake_lightning.bundle.open_model` like everywhere else.
"""

from __future__ import annotations

import json
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
from deepfake_lightning.faces import FacePipeline
from deepfake_lightning.inference.backends import BACKENDS, Backend, OnnxBackend, TorchBackend
from deepfake_lightning.inference.export_model import export_onnx
from deepfake_lightning.inference.face_regions import (
    FaceReport,
    ResolvedFaces,
    bundle_face_spec,
    regions,
    resolve_face_pipeline,
)
from deepfake_lightning.inference.inputs import as_list, as_rgb_array
from deepfake_lightning.prediction.image_check import DEFAULT_MIN_SIZE, check_min_size
from deepfake_lightning.prediction.scoring import label_of, score_prepared

DESCRIBED = (  # bundle fields an answer may show (the card has the rest); paths are cut to names by the service
    "source", "manifest", "format", "sha256", "preprocessing", "temperature", "threshold", "threshold_rule",
    "calibration_source", "checkpoint_threshold", "attention", "versions",
)  # fmt: skip
Inputs = torch.Tensor | Sequence[torch.Tensor]


@dataclass
class Prediction:
    """One image's result. With a face pipeline, `face` is "found"/"not_found", `faces` lists each face (box,
    score, landmarks, alignment, its own p_fake) and `p_fake` is the highest face's; else both are None."""

    p_fake: float
    label: str
    face: str | None = None
    attention: np.ndarray | None = None
    faces: list[dict[str, Any]] | None = None

    def to_dict(self, attention: bool = False) -> dict[str, Any]:
        record: dict[str, Any] = {"p_fake": self.p_fake, "label": self.label}
        if self.face is not None:
            record.update(face=self.face, n_faces=len(self.faces or []), faces=self.faces or [])
        if attention and self.attention is not None:
            record["attention"] = self.attention.tolist()
        return record


@dataclass
class BatchScores:
    p_fake: np.ndarray
    attention: np.ndarray | None = None  # Bxhxw in [0, 1]


class ImagePreparer:
    """RGB array -> (one KxCxHxW tensor per column, face report). Picklable for DataLoader workers.

    A column is one distinct preprocessing (`transforms`) of the regions of one face pipeline: `faces` is a
    `FacePipeline` (or None) every column shares, or one per column for an ensemble whose members crop
    differently. K is the number of regions scored for the image in that column: each face's aligned crop, or 1,
    the whole image (no pipeline, or no face found; the report says which). Each distinct pipeline runs once per
    image; the face report is column 0's. Too-small policy: the shorter side of the *original* image must be
    >= `min_size`, else `ImageTooSmallError`.
    """

    def __init__(
        self,
        transforms: Sequence[Callable[[np.ndarray], torch.Tensor]],
        min_size: int,
        faces: FacePipeline | None | Sequence[FacePipeline | None],
    ) -> None:
        self.transforms = list(transforms)
        self.min_size = min_size
        self.pipelines = list(faces) if isinstance(faces, Sequence) else [faces] * len(self.transforms)
        if len(self.pipelines) != len(self.transforms):
            raise ValueError(
                f"{len(self.pipelines)} face pipelines for {len(self.transforms)} preprocessings"
            )
        self.faces = self.pipelines[0] if self.pipelines else None  # the one whose faces an answer reports

    def __call__(self, image: np.ndarray, name: str) -> tuple[tuple[torch.Tensor, ...], FaceReport | None]:
        check_min_size(image, self.min_size, name)
        found: dict[int, tuple[list[np.ndarray], FaceReport | None]] = {}
        columns = []
        for transform, pipeline in zip(self.transforms, self.pipelines, strict=True):
            if id(pipeline) not in found:
                found[id(pipeline)] = regions(pipeline, image)
            columns.append(torch.stack([transform(a) for a in found[id(pipeline)][0]]))
        return tuple(columns), found[id(self.faces)][1] if columns else None


def preprocessing_key(preprocessing: dict[str, Any]) -> str:
    """Equal for equal preprocessings, whatever the key order (a manifest stores nested records sorted)."""
    return json.dumps(preprocessing, sort_keys=True, default=str)


class BaseDetector:
    """What `Detector` and `EnsembleDetector` share: `preparer`, `threshold`, `score()` and `predict()`."""

    preparer: ImagePreparer
    threshold: float
    max_pixels: int = MAX_PIXELS
    face_crop: bool = False  # True when a face pipeline picks what is scored (describe() says which)

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
            scored = score_prepared(self, [prepared for prepared, _ in chunk], attention=attention)
            for (_, report), one in zip(chunk, scored, strict=True):  # the image's score: its highest face
                label = label_of(one.p_fake, self.threshold)
                if report is None:
                    results.append(Prediction(one.p_fake, label, None, one.attention))
                    continue
                fields = report.fields(one.regions if report.faces else None)
                results.append(Prediction(one.p_fake, label, fields["face"], one.attention, fields["faces"]))
        return results


def _first(inputs: Inputs) -> torch.Tensor:
    return inputs if isinstance(inputs, torch.Tensor) else inputs[0]


class Detector(BaseDetector):
    """A single model behind a `Backend`; p_fake = sigmoid(logit / temperature)."""

    def __init__(
        self,
        backend: Backend,
        bundle: ModelBundle,
        face_crop: bool | None = None,
        min_size: int = DEFAULT_MIN_SIZE,
        max_pixels: int = MAX_PIXELS,
        face_options: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.bundle = bundle
        self.threshold = bundle.threshold
        self.max_pixels = max_pixels
        self.faces: ResolvedFaces = resolve_face_pipeline(
            bundle_face_spec(bundle), face_crop, **(face_options or {})
        )
        self.face_crop = self.faces.pipeline is not None
        self.transform = build_eval_transform(**bundle.preprocessing)
        self.preparer = ImagePreparer([self.transform], min_size, self.faces.pipeline)

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
            **self.faces.describe(),
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
