"""torchmetrics collections, one per stage, with the project's metric names."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryEER,
    BinaryF1Score,
    BinaryRecall,
    BinarySpecificity,
)


def stage_metrics(threshold: float = 0.5) -> MetricCollection:
    """Fake is the positive class: recall = fake detection rate, specificity = real detection rate."""
    return MetricCollection(
        {
            "accuracy": BinaryAccuracy(threshold=threshold),
            "auroc": BinaryAUROC(),
            "ap": BinaryAveragePrecision(),
            "eer": BinaryEER(),
            "f1": BinaryF1Score(threshold=threshold),
            "real_detection_rate": BinarySpecificity(threshold=threshold),
            "fake_detection_rate": BinaryRecall(threshold=threshold),
        }
    )
