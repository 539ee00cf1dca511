"""The scoring step every prediction path shares: prepared images -> one model call -> one `Scored` per image.

A prepared image is one KxCxHxW tensor per distinct preprocessing (K its regions: each face's crop, or the
whole image). A batch stacks them (sum K rows), the detector scores the rows, and the rows are cut back per
image: the image's `p_fake` is its highest region's, and its attention map that region's. Files, video
frames, the service (batched or serial) and `Detector.predict` all go through here, so their rows and
answers agree on what an image's score is.

No runtime import of `inference/`: `inference/detector.py` builds on this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepfake_lightning.evaluation.ensemble_rule import mean_p_fake

if TYPE_CHECKING:
    from deepfake_lightning.inference.detector import BaseDetector
    from deepfake_lightning.inference.face_regions import FaceReport

FAKE, REAL = "fake", "real"


def label_of(p_fake: float, threshold: float) -> str:
    return FAKE if p_fake >= threshold else REAL


def stack_inputs(prepared: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Per-image tuples of KxCxHxW tensors (one per preprocessing) -> one (sum K)xCxHxW batch per preprocessing."""
    return [torch.cat(list(column)) for column in zip(*prepared, strict=True)]


def region_counts(prepared: Sequence[Sequence[torch.Tensor]]) -> list[tuple[int, ...]]:
    """How many scored regions (rows of the batch) each image brought, per column: the same in every column
    unless the detector is an ensemble whose members crop faces differently."""
    return [tuple(int(t.shape[0]) for t in tensors) for tensors in prepared]


def per_image(p_fake: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """The batch's region scores cut back into one array per image (its faces, or its whole image)."""
    return np.split(np.asarray(p_fake), np.cumsum(counts)[:-1])


@dataclass
class Scored:
    """One image: `p_fake` (the highest of its regions), each region's score (its faces, or the whole image) and
    the index of the highest."""

    p_fake: float
    attention: np.ndarray | None = None  # h x w in [0, 1] when asked for and the model has one
    regions: list[float] = field(default_factory=list)
    best: int = 0


def scored_images(p_fake: np.ndarray, maps: np.ndarray | None, counts: Sequence[int]) -> list[Scored]:
    """A batch's region scores (and attention maps) cut back into one `Scored` per image."""
    results, first = [], 0
    for p_regions in per_image(p_fake, counts):
        best = int(np.argmax(p_regions))
        amap = maps[first + best] if maps is not None else None
        results.append(Scored(float(p_regions[best]), amap, [float(p) for p in p_regions], best))
        first += len(p_regions)
    return results


def score_prepared(
    detector: BaseDetector, prepared: Sequence[Sequence[torch.Tensor]], attention: bool = False
) -> list[Scored]:
    """Prepared images (each a tuple of KxCxHxW tensors) scored in one model call, one `Scored` each, in order."""
    return score_stacked(detector, stack_inputs(prepared), region_counts(prepared), attention)


def score_stacked(
    detector: BaseDetector,
    stacked: Sequence[torch.Tensor],
    counts: Sequence[Sequence[int]],
    attention: bool = False,
) -> list[Scored]:
    """A batch already stacked (one (sum K)xCxHxW tensor per column; `counts`: each image's K per column) scored
    in one model call, one `Scored` per image. The entry point of `files.py`, whose workers stack straight into
    shared memory: unstacking to restack would copy every batch once more."""
    if not counts:
        return []
    if getattr(detector, "per_member_faces", False):
        return score_members(detector, stacked, counts)
    scores = detector.score(list(stacked), attention=attention)
    return scored_images(scores.p_fake, scores.attention, [c[0] for c in counts])


def score_members(
    ensemble: Any, stacked: Sequence[torch.Tensor], counts: Sequence[Sequence[int]]
) -> list[Scored]:
    """An ensemble whose members read different face pipelines: each member scores its own column and each image
    gets, per member, what that member alone would give it (its highest region); the image's p_fake is the
    ensemble rule over those. Column 0 holds the faces an answer reports: each face's p_fake is the rule over the
    members reading column 0 (their score of that face) and the others (their score of the image). No attention
    map: the members' maps cover different crops."""
    per_member = []
    for member, column in zip(ensemble.members, ensemble.input_of, strict=True):
        scores = member.score([stacked[column]])
        per_member.append((column, scored_images(scores.p_fake, None, [c[column] for c in counts])))
    results = []
    for i in range(len(counts)):
        images = [(column, scored[i]) for column, scored in per_member]
        p_fake = float(mean_p_fake([image.p_fake for _, image in images]))
        faces = mean_p_fake(
            [image.regions if column == 0 else [image.p_fake] * counts[i][0] for column, image in images]
        )
        results.append(Scored(p_fake, None, [float(p) for p in faces], int(np.argmax(faces))))
    return results


def scored_fields(scored: Scored, report: FaceReport | None, threshold: float) -> dict[str, Any]:
    """A scored image's (or frame's) row fields: p_fake (the highest of its faces), label, error, and its faces."""
    fields: dict[str, Any] = {
        "p_fake": scored.p_fake,
        "label": label_of(scored.p_fake, threshold),
        "error": "",
    }
    if report is not None:
        fields.update(report.fields(scored.regions if report.faces else None))
    return fields


def answer_fields(scored: Scored, report: FaceReport | None, threshold: float) -> dict[str, Any]:
    """The service's answer for one image: a predictions row's fields (`scored_fields`), the same names and
    values, and the threshold; `error`, empty, is left out."""
    fields = scored_fields(scored, report, threshold)
    del fields["error"]
    return fields | {"threshold": threshold}
