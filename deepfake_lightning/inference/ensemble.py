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
from deepfake_lightning.inference.face_regions import (
    MAX_FACES,
    ResolvedFaces,
    bundle_face_spec,
    resolve_face_pipeline,
)
from deepfake_lightning.prediction.image_check import DEFAULT_MIN_SIZE


class EnsembleDetector(BaseDetector):
    """Members sharing one face pipeline (or none) are averaged per region, each image scored by its highest
    region, as before. Members trained on different face pipelines (a full-frame GAN model beside an aligned-crop
    swap model), with no pipeline forced by the caller, each read their own bundle's: the image's p_fake is the
    mean of what each member alone gives it (`prediction/scoring.py`), each (pipeline, preprocessing) runs once."""

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
        specs = [bundle_face_spec(m.bundle) for m in self.members]
        distinct = sorted({repr(s) for s in specs})
        chosen = {k: v for k, v in (face_options or {}).items() if k != "max_faces" and v is not None}
        self.per_member_faces = len(distinct) > 1 and face_crop is None and not chosen
        if self.per_member_faces:  # each member its bundle's pipeline; one pipeline object per distinct spec
            max_faces = (face_options or {}).get("max_faces", MAX_FACES)
            resolved = {repr(s): resolve_face_pipeline(s, None, max_faces=max_faces) for s in specs}
            self.member_faces = [resolved[repr(s)] for s in specs]
            self.faces = ResolvedFaces(None, "per member")
        else:  # one pipeline for all: the one they share, or the caller's choice on top of the defaults
            shared = specs[0] if len(distinct) == 1 else None
            if shared is None and face_crop and not chosen:
                raise ValueError(
                    "the ensemble's models were trained on different face pipelines "
                    f"({', '.join(distinct)}); leave face_crop unset to give each "
                    "model its own, or choose one for all with face_detector=... (or face_crop=false)"
                )
            self.faces = resolve_face_pipeline(shared, face_crop, **(face_options or {}))
            self.member_faces = [self.faces] * len(self.members)
        self.face_crop = any(f.pipeline is not None for f in self.member_faces)
        self.input_of, transforms, pipelines = _columns(self.members, self.member_faces)
        self.preparer = ImagePreparer(transforms, min_size, pipelines)

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
        """Row-wise mean of the members' calibrated p_fake (row k of every column is the same region). With
        per-member face pipelines the columns' rows are different regions: images go through
        `prediction.scoring`, which averages per image; here only batches of one region per image are taken."""
        if isinstance(inputs, torch.Tensor):
            inputs = [inputs]
        if self.per_member_faces and len({int(t.shape[0]) for t in inputs}) > 1:
            raise ValueError(
                "an ensemble with per-member face pipelines scores whole images (prediction.scoring."
                f"score_prepared), not rows: its columns hold {[int(t.shape[0]) for t in inputs]} regions"
            )
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
            "members": [
                {**member.describe(), "face_crop": faces.pipeline is not None, **faces.describe()}
                if self.per_member_faces
                else member.describe()
                for member, faces in zip(self.members, self.member_faces, strict=True)
            ],
        }


def _columns(
    members: Sequence[Detector], faces: Sequence[ResolvedFaces]
) -> tuple[list[int], list[Any], list[Any]]:
    """One prepared column per distinct (face pipeline, preprocessing), those with a face pipeline first (column
    0's faces are the ones an answer reports): which column each member reads, each column's transform and
    pipeline."""
    member_keys = [
        (repr(f.describe()["face_pipeline"]), preprocessing_key(m.bundle.preprocessing))
        for m, f in zip(members, faces, strict=True)
    ]
    keys: list[tuple[str, str]] = []
    transforms, pipelines = [], []
    for i in sorted(range(len(members)), key=lambda i: faces[i].pipeline is None):
        if member_keys[i] not in keys:
            keys.append(member_keys[i])
            transforms.append(members[i].transform)
            pipelines.append(faces[i].pipeline)
    return [keys.index(key) for key in member_keys], transforms, pipelines


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
