"""Frame scores -> one score per video (or any group): the one home of the aggregation rule.

`eval eval.aggregate_by=video` scores each video of the test split, and `predict_video` (and the service) score
one video, with the same `ScoreAggregate`, so a video-level AUROC measured in `eval` describes exactly the score
`predict_video` gives a user. The rules:

- `mean`: the mean of the frame probabilities, DeepfakeBench's video score (the default);
- `max`: the highest frame probability, for a fake that shows in a single frame;
- `top_k_mean`: the mean of the `top_k` highest, between the two (all frames when a video has fewer).

A running sum, the maximum and a k-element heap are all it keeps, so an endless stream stays bounded in memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.metrics import compute_metrics, to_numpy
from deepfake_lightning.utils.config_schema import FrameAggregation

DEFAULT_AGGREGATE = "mean"
DEFAULT_TOP_K = 5


def check_aggregate(method: str, top_k: int) -> None:
    """The schema's check (`FrameAggregation`): the same one line as a bad config value."""
    FrameAggregation.check({"aggregate": method, "top_k": top_k})


@dataclass
class ScoreAggregate:
    """Running aggregate of one video's frame scores in O(top_k) memory."""

    top_k: int = DEFAULT_TOP_K
    count: int = 0
    total: float = 0.0
    maximum: float = float("-inf")
    top: list[float] = field(default_factory=list)  # min-heap of the top_k highest scores

    def __post_init__(self) -> None:
        FrameAggregation.check_value("top_k", self.top_k)

    def add(self, score: float) -> None:
        score = float(score)
        self.count += 1
        self.total += score
        self.maximum = max(self.maximum, score)
        heapq.heappush(self.top, score)
        if len(self.top) > self.top_k:
            heapq.heappop(self.top)

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def top_k_mean(self) -> float:
        return sum(self.top) / len(self.top)

    def value(self, method: str = DEFAULT_AGGREGATE) -> float:
        """The video score by `method`; a video with no scored frame has none (ValueError)."""
        if self.count == 0:
            raise ValueError("no frame scores to aggregate")
        if method == "mean":
            return self.mean
        if method == "max":
            return self.maximum
        if method == "top_k_mean":
            return self.top_k_mean
        FrameAggregation.check_value("aggregate", method)  # raises: not one of AGGREGATES
        raise AssertionError(f"AGGREGATES has {method!r} without a rule here")


@dataclass(frozen=True)
class GroupScores:
    """One row per group, in order of first appearance: its key, label (1 = fake), score and frame count."""

    keys: list[str]
    labels: np.ndarray
    p_fake: np.ndarray
    n_frames: np.ndarray


def aggregate_groups(
    keys: Sequence[str],
    p_fake: Any,
    labels: Any,
    method: str = DEFAULT_AGGREGATE,
    top_k: int = DEFAULT_TOP_K,
    column: str = "group",
) -> GroupScores:
    """Aggregate frame scores per key. A group whose frames carry both labels is an error naming it: a video
    is real or fake as a whole, and a mixed one means the labels CSV or the folders are wrong."""
    check_aggregate(method, top_k)
    p = to_numpy(p_fake)
    y = to_numpy(labels, dtype=np.int64)
    if not len(keys) == p.size == y.size:
        raise ValueError(f"aggregate_groups: {len(keys)} keys, {p.size} scores, {y.size} labels")
    scores: dict[str, ScoreAggregate] = {}
    label_of: dict[str, int] = {}
    mixed: list[str] = []
    for key, score, label in zip(keys, p.tolist(), y.tolist(), strict=True):
        if key not in scores:
            scores[key] = ScoreAggregate(top_k=top_k)
            label_of[key] = label
        elif label_of[key] != label and key not in mixed:
            mixed.append(key)
        scores[key].add(score)
    if mixed:
        shown = ", ".join(repr(k) for k in mixed[:5]) + (", ..." if len(mixed) > 5 else "")
        raise ValueError(
            f"{len(mixed)} {column} value(s) hold both real and fake frames: {shown}; expected one label per "
            f"{column}"
        )
    order = list(scores)
    return GroupScores(
        keys=order,
        labels=np.array([label_of[k] for k in order], dtype=np.int64),
        p_fake=np.array([scores[k].value(method) for k in order], dtype=np.float64),
        n_frames=np.array([scores[k].count for k in order], dtype=np.int64),
    )


def group_level_metrics(
    keys: Sequence[str],
    p_fake: Any,
    labels: Any,
    column: str,
    method: str = DEFAULT_AGGREGATE,
    top_k: int = DEFAULT_TOP_K,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Any], GroupScores]:
    """`compute_metrics` on the group scores: the bootstrap resamples groups (videos), not frames, so the CIs
    are as wide as the number of videos makes them. The threshold is the frame-level one."""
    groups = aggregate_groups(keys, p_fake, labels, method, top_k, column)
    metrics = compute_metrics(groups.p_fake, groups.labels, threshold, n_bootstrap, seed=seed)
    frames = groups.n_frames
    metrics.update(
        aggregate_by=column,
        aggregate=method,
        top_k=top_k if method == "top_k_mean" else None,
        n_frames=int(frames.sum()),
        frames_per_group={"min": int(frames.min()), "mean": float(frames.mean()), "max": int(frames.max())},
    )
    return metrics, groups


def level_key(column: str) -> str:
    """`video` -> `video_level`: the key of `test_results.json` holding the group-level metrics."""
    return f"{column}_level"
