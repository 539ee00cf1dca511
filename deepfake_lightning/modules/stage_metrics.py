"""torchmetrics collections, one per stage, with the project's metric names."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryConfusionMatrix,
    BinaryEER,
    BinaryF1Score,
    BinaryRecall,
    BinarySpecificity,
)

# The operating point of the metrics Lightning logs during training and testing. The calibrated threshold (and
# temperature) is fitted on validation only after training, so these cannot use it; their logged names end in
# "@0.5" to say so. test_results.json, eval and the reports use the calibrated rule and plain names.
LOGGED_THRESHOLD = 0.5
AT_THRESHOLD = ("accuracy", "f1", "real_detection_rate", "fake_detection_rate")


def logged_name(name: str) -> str:
    """``accuracy`` -> ``accuracy@0.5``; threshold-free metrics (auroc, ap, eer) keep their name."""
    return f"{name}@{LOGGED_THRESHOLD:g}" if name in AT_THRESHOLD else name


def stage_metrics() -> MetricCollection:
    """Fake is the positive class: recall = fake detection rate, specificity = real detection rate.

    Threshold-free: auroc, ap, eer. At p_fake >= 0.5 of the raw (uncalibrated) sigmoid: accuracy, f1 and the
    detection rates, logged as ``<name>@0.5`` (:func:`logged_name`).
    """
    t = LOGGED_THRESHOLD
    return MetricCollection(
        {
            "accuracy": BinaryAccuracy(threshold=t),
            "auroc": BinaryAUROC(),
            "ap": BinaryAveragePrecision(),
            "eer": BinaryEER(),
            "f1": BinaryF1Score(threshold=t),
            "real_detection_rate": BinarySpecificity(threshold=t),
            "fake_detection_rate": BinaryRecall(threshold=t),
        }
    )


def stage_confusion() -> BinaryConfusionMatrix:
    """``[[tn, fp], [fn, tp]]`` at the same uncalibrated 0.5 as the logged metrics."""
    return BinaryConfusionMatrix(threshold=LOGGED_THRESHOLD)
