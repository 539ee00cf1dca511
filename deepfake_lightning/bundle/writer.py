"""`write_model_bundle`: the one writer of a bundle manifest, called by train, eval and export.

Train describes `best.ckpt` in `best.ckpt.json` (or, testing a given checkpoint, in `RUN/bundle.json`); eval
describes the checkpoint it scored in `EVAL_RUN/bundle.json`; export describes its `.onnx`/`.pt` in
`<export>.json`. Each starts from the `LoadedModel` it opened, so the weights are never read or hashed again,
and replaces what the run measured: the calibration it applied, the training data, the test metrics.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfake_lightning.bundle.calibration_file import apply_calibration
from deepfake_lightning.bundle.open import LoadedModel
from deepfake_lightning.bundle.record import (
    BUNDLE_VERSION,
    ModelBundle,
    bundle_from_hparams,
    manifest_path,
    versions,
)
from deepfake_lightning.bundle.score_distribution import check_score_distribution
from deepfake_lightning.utils.hashing import sha256_file

COUNT_KEYS = ("n", "n_real", "n_fake", "ci_level", "n_bootstrap", "threshold", "temperature")
CI_KEYS = {"value", "ci_low", "ci_high"}


@dataclass
class Export:
    """An exported copy of a checkpoint: its file, its format and the format's own fields (input, opset...)."""

    path: Path
    format: str
    fields: dict[str, Any] = field(default_factory=dict)
    attention: bool = False


def _base(model: LoadedModel, export: Export | None) -> ModelBundle:
    """A checkpoint's record starts from its own hyperparameters; an export's from the bundle it was made from."""
    if export is not None:
        bundle = copy.deepcopy(model.bundle)
        bundle.source, bundle.format, bundle.extra = str(export.path), export.format, dict(export.fields)
        bundle.attention = export.attention
    elif model.hparams:
        bundle = bundle_from_hparams(model.path.resolve(), model.hparams)
        bundle.attention = model.bundle.attention
        bundle.training_data, bundle.test_metrics = model.training_data, model.test_metrics
        for key in (
            "temperature",
            "threshold",
            "threshold_rule",
            "calibration_source",
            "calibration",
            "validation_scores",
        ):
            setattr(bundle, key, copy.deepcopy(getattr(model.bundle, key)))
    else:
        bundle = copy.deepcopy(model.bundle)
    bundle.versions, bundle.manifest = {}, None  # this writer's own versions
    return bundle


def write_model_bundle(
    model: LoadedModel,
    manifest: str | Path | None = None,
    *,
    calibration: dict[str, Any] | None = None,
    calibration_file: str | Path | None = None,
    training_data: dict[str, Any] | None = None,
    test_metrics: dict[str, Any] | None = None,
    validation_scores: dict[str, Any] | None = None,
    export: Export | None = None,
) -> Path:
    """Write the manifest of `model` (or of its `export`) to `manifest`, default `<weights>.json`; atomic.

    `calibration` is the record the run applied (fitted on validation and saved in `calibration_file`, or the
    uncalibrated record); `training_data` and `test_metrics` what the run knows; `validation_scores` the
    histogram of the validation logits (`score_distribution`) the run predicted. Each left None keeps the
    model's own, as `open_model` read it.
    """
    bundle = _base(model, export)
    if calibration is not None:
        apply_calibration(bundle, calibration, str(calibration_file) if calibration_file else None)
    if training_data is not None:
        bundle.training_data = training_data
    if test_metrics is not None:
        bundle.test_metrics = test_metrics
    if validation_scores is not None:
        bundle.validation_scores = check_score_distribution(validation_scores, "validation_scores")
    return write_bundle(bundle, manifest, None if export is not None else model.sha256)


def write_bundle(bundle: ModelBundle, manifest: str | Path | None = None, sha256: str | None = None) -> Path:
    """Write `bundle` as JSON to `manifest` (default `<weights>.json`), with the versions of this process and
    the weights' SHA-256 (`sha256` when the caller hashed them already, else computed here)."""
    weights = Path(bundle.source)
    manifest = Path(manifest) if manifest is not None else manifest_path(weights)
    bundle.sha256 = sha256 or sha256_file(weights)
    bundle.versions = bundle.versions or versions()
    same_dir = weights.resolve().parent == manifest.resolve().parent
    record = {k: v for k, v in bundle.to_dict().items() if k not in ("source", "manifest", "extra")}
    if bundle.calibration_source:
        record["calibration_source"] = os.path.relpath(
            Path(bundle.calibration_source).resolve(), manifest.parent.resolve()
        )
    record = {
        "bundle_version": BUNDLE_VERSION,
        "model_file": weights.name if same_dir else str(weights.resolve()),
        **bundle.extra,
        **record,
    }
    manifest.parent.mkdir(parents=True, exist_ok=True)
    partial = manifest.with_name(manifest.name + ".partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(partial, manifest)
    bundle.manifest = str(manifest)
    return manifest


def summarize_test_metrics(results: dict[str, Any], data: str, checkpoint: str | Path) -> dict[str, Any]:
    """The metrics with CIs of a test run (every ``{"value", "ci_low", "ci_high"}`` entry), the counts behind
    them, the data and the weights file scored."""
    metrics = {k: v for k, v in results.items() if isinstance(v, dict) and CI_KEYS <= set(v)}
    counts = {k: results[k] for k in COUNT_KEYS if k in results}
    return {**metrics, **counts, "data": data, "checkpoint": Path(checkpoint).name}


def training_data_summary(
    data_cfg: dict[str, Any], name: str, counts: dict[str, Any] | None
) -> dict[str, Any]:
    """Which data trained the model: the data config's name, module and folder, the split counts, and the
    resolved config itself (what eval scores when no ``data=`` is given)."""
    target = str(data_cfg.get("_target_", ""))
    root = data_cfg.get("root") or data_cfg.get("data_dir")
    return {
        "name": name,
        "datamodule": target.rsplit(".", 1)[-1] or None,
        "dataset": Path(str(root)).name if root else None,
        "group_by": data_cfg.get("group_by"),
        "images_per_split": counts,
        "config": data_cfg,
    }
