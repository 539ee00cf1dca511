"""`EnsembleDetector`: the mean of its members' *calibrated* probabilities, behind the `Detector` interface.

Averaging calibrated probabilities (not raw logits) keeps an over-confident member from dominating. Members
may differ in image size or normalization: each distinct preprocessing runs once per image, and each member
reads its own. The decision threshold is the mean of the members' thresholds unless one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lightning.data.images import MAX_PIXELS
from deepfake_lightning.evaluation.ensemble_rule import COMBINE_RULE, mean_p_fake, mean_threshold
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.inference.detector import (
    BaseDetector,
    BatchScores,
    Detector,
    ImagePreparer,
    Inputs,
    preprocessing_key,
)
from deepfake_lightning.inference.face_regions import ResolvedFaces, bundle_face_spec, resolve_face_pipeline
from deepfake_lightning.prediction.image_check import DEFAULT_MIN_SIZE


class EnsembleDetector(BaseDetector):
    def __init__(
        self,
        members: Sequence[Detector],
        threshold: float | None = None,
        face_crop: bool | None = None,
        min_size: int = DEFAULT_MIN_SIZE,
        max_pixels: int = MAX_PIXELS,
        face_options: dict[str, Any] | None = None,
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(members)}")
        self.members = list(members)
        self.threshold = (
            float(threshold) if threshold is not None else mean_threshold([m.threshold for m in members])
        )
        self.max_pixels = max_pixels
        self.faces: ResolvedFaces = resolve_face_pipeline(
            _shared_face_spec(members, face_crop, face_options), face_crop, **(face_options or {})
        )
        self.face_crop = self.faces.pipeline is not None
        keys: list[str] = []
        transforms = []
        self.input_of: list[int] = []  # member i reads prepared tensor input_of[i]
        for member in self.members:
            key = preprocessing_key(member.bundle.preprocessing)
            if key not in keys:
                keys.append(key)
                transforms.append(member.transform)
            self.input_of.append(keys.index(key))
        self.preparer = ImagePreparer(transforms, min_size, self.faces.pipeline)

    @classmethod
    def load(
        cls,
        paths: Sequence[str | Path],
        threshold: float | None = None,
        face_crop: bool | None = None,
        min_size: int = DEFAULT_MIN_SIZE,
        max_pixels: int = MAX_PIXELS,
        face_options: dict[str, Any] | None = None,
        **member_options: Any,
    ) -> EnsembleDetector:
        members = [Detector.load(path, face_crop=False, **member_options) for path in paths]
        return cls(members, threshold, face_crop, min_size, max_pixels, face_options)

    def score(self, inputs: Inputs, attention: bool = False) -> BatchScores:
        if isinstance(inputs, torch.Tensor):
            inputs = [inputs]
        scores = [
            m.score([inputs[i]], attention=attention)
            for m, i in zip(self.members, self.input_of, strict=True)
        ]
        p_fake = mean_p_fake([s.p_fake for s in scores])
        maps = [s.attention for s in scores]
        same_shape = all(m is not None for m in maps) and len({m.shape for m in maps}) == 1
        return BatchScores(p_fake, np.mean(maps, axis=0) if attention and same_shape else None)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ensemble",
            "combine": COMBINE_RULE,
            "threshold": self.threshold,
            "face_crop": self.face_crop,
            **self.faces.describe(),
            "min_size": self.preparer.min_size,
            "members": [member.describe() for member in self.members],
        }


def _shared_face_spec(
    members: Sequence[Detector], face_crop: bool | None, face_options: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The face pipeline all members were trained with; members that differ need an explicit choice."""
    specs = {repr(bundle_face_spec(m.bundle)): bundle_face_spec(m.bundle) for m in members}
    if len(specs) == 1:
        return next(iter(specs.values()))
    chosen = {k: v for k, v in (face_options or {}).items() if k != "max_faces" and v is not None}
    if face_crop is False or chosen:
        return None  # the caller decides
    raise ValueError(
        "the ensemble's models were trained on different face pipelines "
        f"({', '.join(sorted(specs))}); choose one with face_crop=true face_detector=... or face_crop=false"
    )


def evaluate_ensemble(
    detector: BaseDetector, samples: Sequence[tuple[str, int]], batch_size: int = 32, n_bootstrap: int = 1000
) -> dict[str, Any]:
    """Metrics of any detector (an ensemble included) on labelled `(path, label)` samples, label 1 = fake.

    For eval-side ensembles: `evaluate_ensemble(load_detector([a, b]), index_folder(root, use_all_for_test=True)
    ["test"])` gives the same metric record as `compute_metrics` at the ensemble's threshold.
    """
    paths = [path for path, _ in samples]
    predictions = detector.predict(paths, batch_size=batch_size)
    p_fake = [p.p_fake for p in predictions]
    labels = [label for _, label in samples]
    return compute_metrics(p_fake, labels, threshold=detector.threshold, n_bootstrap=n_bootstrap)
