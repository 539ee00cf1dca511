"""The model card the service and its page show: read from the model's own records, never typed anywhere.

Sources, in order: keys the model file itself carries (`training_data`, `test_metrics` in an export's JSON or a
model bundle), then the records of the training run a checkpoint lives in (`RUN/checkpoints/X.ckpt` ->
`RUN/test_results.json`, `RUN/config.yaml`), the same run folder whose `calibration.json` inference already
reads. Test metrics are shown only when they were measured on this very checkpoint file. Paths are reduced to
file and folder names: the card is public.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from deepfake_lightning.evaluation.metrics import METRIC_NAMES
from deepfake_lightning.inference.detector import BaseDetector, Detector
from deepfake_lightning.inference.metadata import package_version

log = logging.getLogger(__name__)
COUNT_KEYS = ("n", "n_real", "n_fake", "ci_level", "n_bootstrap", "threshold")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        if path.exists():
            log.warning("model card: cannot read %s (%s)", path, err)
        return None
    return record if isinstance(record, dict) else None


def _run_dir(source: str) -> Path | None:
    path = Path(source)
    return path.parent.parent if path.suffix == ".ckpt" and path.parent.name == "checkpoints" else None


def _test_metrics(record: dict[str, Any] | None, checkpoint: str) -> dict[str, Any] | None:
    if record is None:
        return None
    tested = record.get("checkpoint")
    if tested and Path(str(tested)).name != Path(checkpoint).name:
        return {"note": f"the run's test metrics are for {Path(str(tested)).name}, not this file"}
    metrics = {k: record[k] for k in METRIC_NAMES if isinstance(record.get(k), dict)}
    return {**metrics, **{k: record[k] for k in COUNT_KEYS if k in record}} if metrics else None


def _training_data(run: Path, results: dict[str, Any] | None) -> dict[str, Any] | None:
    data: dict[str, Any] = {}
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(run / "config.yaml") if (run / "config.yaml").is_file() else None
    except Exception as err:  # a hand-edited config: the card goes without it
        log.warning("model card: cannot read %s (%s)", run / "config.yaml", err)
        cfg = None
    if cfg is not None and "data" in cfg:
        node = cfg.data
        target = str(node.get("_target_", ""))
        data["datamodule"] = target.rsplit(".", 1)[-1] or None
        root = node.get("root") or node.get("data_dir")
        data["dataset"] = Path(str(root)).name if root else None
        data["group_by"] = node.get("group_by")
    if results is not None and isinstance(results.get("data"), dict):
        data["images_per_split"] = results["data"]
    return {k: v for k, v in data.items() if v is not None} or None


def _single_card(detector: Detector) -> dict[str, Any]:
    info = detector.info
    extra = info.extra
    card: dict[str, Any] = {
        "kind": "single",
        "model": Path(info.source).name,
        "backend": detector.backend.name,
        "image_size": info.preprocessing.get("image_size"),
        "preprocessing": info.preprocessing,
        "attention_map": info.attention,
        "calibration": {
            "temperature": info.temperature,
            "threshold": info.threshold,
            "threshold_rule": info.threshold_rule,
            "fitted_from": Path(info.calibration_source).name if info.calibration_source else None,
        },
        "version": {
            "package": extra.get("package_version") or package_version(),
            "model_sha256": extra.get("sha256"),
        },
        "training_data": extra.get("training_data"),
        "test_metrics": extra.get("test_metrics"),
    }
    run = _run_dir(info.source)
    if run is not None and (card["training_data"] is None or card["test_metrics"] is None):
        results = _read_json(run / "test_results.json")
        card["training_data"] = card["training_data"] or _training_data(run, results)
        card["test_metrics"] = card["test_metrics"] or _test_metrics(results, info.source)
    return card


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
