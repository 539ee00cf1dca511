"""Score a stream of frames in bounded batches and summarise the video: mean, top-k mean and max of p_fake.

The video score and label follow `aggregate` (`evaluation/aggregate.py`, the rule `eval eval.aggregate_by=video`
measures): the mean is the DeepfakeBench video score (average of frame probabilities, the default); the top-k
mean catches a fake that fills only a few seconds of a long clip. Memory stays bounded for endless streams: one
batch of frames, a k-element heap, and a timeline that halves its resolution whenever it fills up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.data.images import BadImageError
from deepfake_lightning.evaluation.aggregate import DEFAULT_AGGREGATE, ScoreAggregate, check_aggregate
from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.face_regions import FACE_COLUMNS, FaceReport
from deepfake_lightning.inference.video_source import Frame, batched
from deepfake_lightning.prediction.image_check import as_refusal, refusal_fields
from deepfake_lightning.prediction.scoring import Scored, label_of, score_prepared, scored_fields

FRAME_COLUMNS = ("frame", "time_s", "p_fake", "label", *FACE_COLUMNS, "error")
TIMELINE_POINTS = 4096
Prepared = tuple[
    tuple[torch.Tensor, ...], FaceReport | None
]  # a frame's tensors (one per preprocessing), faces


@dataclass
class VideoSummary:
    """Running aggregate of frame scores (`ScoreAggregate`) and a timeline, in O(top_k + TIMELINE_POINTS) memory."""

    top_k: int = 5
    aggregate: str = DEFAULT_AGGREGATE
    errors: int = 0
    faces_found: int = 0
    timeline: list[tuple[float, float]] = field(default_factory=list)
    scores: ScoreAggregate = field(init=False)
    _stride: int = 1

    def __post_init__(self) -> None:
        check_aggregate(self.aggregate, self.top_k)
        self.scores = ScoreAggregate(top_k=self.top_k)

    @property
    def count(self) -> int:
        return self.scores.count

    @property
    def top(self) -> list[float]:
        return self.scores.top

    def add(self, time_s: float, p_fake: float, face: str | None) -> None:
        if self.count % self._stride == 0:
            self.timeline.append((time_s, p_fake))
            if len(self.timeline) >= TIMELINE_POINTS:
                self.timeline = self.timeline[::2]
                self._stride *= 2
        self.scores.add(p_fake)
        self.faces_found += face == "found"

    def result(self, threshold: float) -> dict[str, Any]:
        if self.count == 0:
            return {"frames_scored": 0, "frames_failed": self.errors, "p_fake_mean": None, "label": None}
        scores = self.scores
        video = scores.value(self.aggregate)
        return {
            "frames_scored": self.count,
            "frames_failed": self.errors,
            "aggregate": self.aggregate,
            "p_fake_video": video,
            "p_fake_mean": scores.mean,
            f"p_fake_top{self.top_k}_mean": scores.top_k_mean,
            "p_fake_max": scores.maximum,
            "threshold": threshold,
            "label": label_of(video, threshold),
            "label_top_k": label_of(scores.top_k_mean, threshold),
            "faces_found": self.faces_found,
        }


def frame_columns(detector: BaseDetector) -> list[str]:
    """A frame file's columns: the face columns only when the detector crops faces."""
    return [c for c in FRAME_COLUMNS if c not in FACE_COLUMNS or detector.face_crop]


def predict_frames(
    detector: BaseDetector,
    frames: Iterable[Frame],
    batch_size: int = 16,
    top_k: int = 5,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    aggregate: str = DEFAULT_AGGREGATE,
) -> VideoSummary:
    """Score frames batch by batch; each frame's row goes to `on_row` (a file writer) and is not kept."""
    summary = VideoSummary(top_k=top_k, aggregate=aggregate)
    for batch in batched(frames, batch_size):
        items = prepare_frames(batch, lambda frame: detector.preparer(frame.image, f"frame {frame.index}"))
        good = [item[0] for _, item in items if not isinstance(item, BadImageError)]
        scored = score_prepared(detector, good) if good else []
        for row in frame_rows(items, scored, detector.threshold, summary):
            if on_row is not None:
                on_row(row)
    return summary


def prepare_frames(
    frames: Iterable[Frame], prepare: Callable[[Frame], Prepared]
) -> list[tuple[Frame, Prepared | BadImageError]]:
    """Each frame with its prepared tensors and face report, or the refusal that says why it could not be
    prepared (`image_check.py`: the reason and message a file or an upload would get)."""
    items: list[tuple[Frame, Prepared | BadImageError]] = []
    for frame in frames:
        try:
            items.append((frame, prepare(frame)))
        except ValueError as err:  # too small, odd shape: recorded per frame
            items.append((frame, as_refusal(err, f"frame {frame.index}")))
    return items


def frame_rows(
    items: Sequence[tuple[Frame, Prepared | BadImageError]],
    scored: Sequence[Scored],
    threshold: float,
    summary: VideoSummary,
) -> list[dict[str, Any]]:
    """One row per frame, in order (`scored`: the prepared frames' scores, in order); each added to `summary`."""
    rows, scores = [], iter(scored)
    for frame, item in items:
        row: dict[str, Any] = {"frame": frame.index, "time_s": round(frame.time_s, 4)}
        if isinstance(item, BadImageError):
            row.update(refusal_fields(item))
            summary.errors += 1
        else:
            row.update(scored_fields(next(scores), item[1], threshold))
            summary.add(row["time_s"], row["p_fake"], row.get("face"))
        rows.append(row)
    return rows


def plot_timeline(summary: VideoSummary, threshold: float, path: str | Path, title: str = "") -> Path:
    """p_fake over time with the decision threshold: where in the clip the model sees a fake."""
    # lazy: matplotlib costs 3.1 s to import here (-X importtime after torch, load 15); only the figure needs it
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib costs 3.1 s to import here (-X importtime after torch, load 15); only the figure needs it
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    if summary.timeline:
        times, scores = zip(*summary.timeline, strict=True)
        ax.plot(times, scores, marker="o", markersize=2.5, linewidth=1.0, label="frame p_fake")
        video = summary.scores.value(summary.aggregate)
        ax.axhline(video, color="tab:green", linestyle=":", label=f"video score ({summary.aggregate})")
    ax.axhline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="time (s)", ylabel="p_fake", ylim=(-0.02, 1.02), title=title or "Per-frame p_fake")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
