"""The model bundle: everything a trained model is, in one record beside its weights, read by one reader.

Why: a checkpoint alone does not say which temperature and threshold were fitted for it, what data it was
trained on or how it tested. Finding those by folder conventions gave eval and inference two lookup rules and
let a calibration fitted for one checkpoint be applied to another with only a warning.

A bundle is a JSON manifest naming its weights file (`.ckpt`, `.onnx`, `.pt`) and holding the preprocessing,
the temperature, the threshold and the rule that chose it, the training data, the test metrics with CIs, the
versions and the weights' SHA-256. Its place is fixed: `<weights>.json` beside the weights (training writes
`RUN/checkpoints/best.ckpt.json`, export `model.onnx.json`); eval writes `EVAL_RUN/bundle.json`, which names
the checkpoint it scored. `load_bundle` takes either the weights or a manifest; every consumer (eval,
robustness, predict, serve, the model card, ensembles, the int8 cache) reads through it. A weights file whose
SHA-256 differs from its manifest, or a calibration fitted for other weights, is a `BundleError`.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deepfake_lightning.utils.hashing import sha256_file

log = logging.getLogger(__name__)

BUNDLE_VERSION = 2  # 1: the export-only MODEL.json of earlier releases (same core keys, still read)
REQUIRED = ("preprocessing", "threshold", "temperature", "sha256", "model_file")
UNCALIBRATED = {"temperature": 1.0, "threshold_rule": "fixed", "fitted_on": None}
OFF = ("none", "null", "off")


class BundleError(ValueError):
    """A model, bundle or calibration file that cannot be used; the message names the file and the reason."""


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


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{what}={str(path)!r}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise BundleError(f"{path}: holds {type(record).__name__}; expected a JSON object")
    return record


def _threshold_ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def read_calibration(path: str | Path) -> dict[str, Any]:
    """A ``calibration.json`` (or a bundle manifest's calibration), validated; errors name the file."""
    path = Path(path)
    record = _read_json(path, "calibration")
    if "bundle_version" in record:  # a whole bundle given as the calibration: its own fit
        record = {
            **(record.get("calibration") or {}),
            **{k: record.get(k) for k in ("temperature", "threshold", "threshold_rule")},
            "checkpoint_sha256": record.get("sha256"),
        }
    temperature = record.get("temperature")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise BundleError(f"{path}: temperature={temperature!r}; expected a positive number")
    threshold = record.get("threshold")
    if threshold is not None and not _threshold_ok(threshold):
        raise BundleError(f"{path}: threshold={threshold!r}; expected a number in [0, 1]")
    return record


def check_calibration_matches(record: dict[str, Any], bundle: ModelBundle, path: Path) -> None:
    """A calibration fitted for other weights is refused: its threshold would mean nothing for these."""
    fitted_for = record.get("checkpoint_sha256")
    if fitted_for and bundle.sha256s and fitted_for not in bundle.sha256s:
        raise BundleError(
            f"{path}: fitted for weights with SHA-256 {fitted_for[:12]}..., not {Path(bundle.source).name} "
            f"({(bundle.sha256 or '')[:12]}...); calibrate these weights (eval calibration.refit=true) or "
            "pass calibration=none"
        )
    named = record.get("checkpoint")
    if (
        not fitted_for
        and named
        and bundle.format == "ckpt"
        and Path(str(named)).name != Path(bundle.source).name
    ):
        raise BundleError(
            f"{path}: fitted for {Path(str(named)).name}, not {Path(bundle.source).name}; pass the calibration "
            "of this checkpoint, or calibration=none"
        )


def apply_calibration(bundle: ModelBundle, record: dict[str, Any] | None, source: str | None) -> ModelBundle:
    """Temperature and (when present) threshold from `record`; None restores T=1 and the configured threshold."""
    if record is None:
        bundle.temperature, bundle.threshold = 1.0, bundle.checkpoint_threshold
        bundle.threshold_rule, bundle.calibration_source = "fixed", None
        bundle.calibration = dict(UNCALIBRATED)
        return bundle
    bundle.temperature = float(record["temperature"])
    if record.get("threshold") is not None:
        bundle.threshold = float(record["threshold"])
    bundle.threshold_rule = record.get("threshold_rule")
    bundle.calibration_source = source
    bundle.calibration = {k: v for k, v in record.items() if k not in ("temperature", "threshold", "source")}
    return bundle


def _weights_of(manifest: Path, record: dict[str, Any]) -> Path:
    weights = Path(str(record["model_file"]))
    return weights if weights.is_absolute() else manifest.parent / weights


def _from_record(record: dict[str, Any], weights: Path, manifest: Path) -> ModelBundle:
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise BundleError(f"{manifest}: missing key(s) {missing}; expected a model bundle manifest")
    known = {f.name for f in fields(ModelBundle)} - {"source", "manifest", "extra"}
    values = {k: record[k] for k in known if k in record}
    values.setdefault("format", {".onnx": "onnx", ".pt": "torchscript"}.get(weights.suffix, "ckpt"))
    values.setdefault("checkpoint_threshold", record.get("threshold", 0.5))
    skip = known | {"bundle_version", "metadata_version", "model_file", "package_version", "extra"}
    extra = {**(record.get("extra") or {}), **{k: v for k, v in record.items() if k not in skip}}
    if "package_version" in record and not values.get("versions"):  # a version-1 export
        values["versions"] = {"deepfake_lightning": record["package_version"]}
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
    )


def _bare_checkpoint(weights: Path) -> ModelBundle:
    from deepfake_lightning.checkpoints import read_checkpoint  # torch: only when a checkpoint must be opened

    log.warning(
        "%s has no bundle manifest %s beside it (it was not written by train, eval or export): "
        "uncalibrated, T=1 and the checkpoint's threshold",
        weights,
        manifest_path(weights).name,
    )
    bundle = bundle_from_hparams(weights, read_checkpoint(weights)["hyper_parameters"])
    bundle.sha256 = sha256_file(weights)
    return bundle


def load_bundle(
    path: str | Path, calibration: str | Path | None = "auto", verify: bool = True
) -> ModelBundle:
    """The one reader: `path` is a weights file (its `<name>.json` manifest is read) or a manifest.

    `calibration`: ``auto`` keeps the bundle's own; ``none`` (or None) gives T=1 and the configured threshold;
    a path (a ``calibration.json`` or another bundle) replaces it, if it was fitted for these weights.
    With `verify`, weights whose SHA-256 differs from the manifest are refused.
    """
    path = Path(path)
    if path.suffix == ".json":
        manifest, record = path, _read_json(path, "bundle")
        if "model_file" not in record:
            raise BundleError(f"{path}: not a model bundle (no model_file); expected a manifest written by "
                              "train, eval or export")  # fmt: skip
        weights = _weights_of(manifest, record)
    else:
        weights, manifest = path, manifest_path(path)
        record = _read_json(manifest, "bundle") if manifest.is_file() else None
    if not weights.is_file():
        raise BundleError(f"{weights}: model file not found" + (f" (named by {manifest})" if record else ""))
    if record is None:
        if weights.suffix != ".ckpt":
            raise BundleError(
                f"{weights}: bundle {manifest.name} not found beside it; export with "
                "python -m deepfake_lightning.export, which writes both"
            )
        bundle = _bare_checkpoint(weights)
    else:
        bundle = _from_record(record, weights, manifest)
        if verify and sha256_file(weights) != bundle.sha256:
            raise BundleError(
                f"{weights}: SHA-256 differs from the one recorded in {manifest}; the weights changed after "
                "the bundle was written (re-run eval or export to record these weights)"
            )
    if calibration is None or str(calibration).lower() in OFF:
        return apply_calibration(bundle, None, None)
    if str(calibration) != "auto":
        source = Path(calibration)
        if source.resolve() != Path(bundle.manifest or "").resolve():
            record = read_calibration(source)
            check_calibration_matches(record, bundle, source)
            apply_calibration(bundle, record, str(source))
    return bundle


def write_bundle(bundle: ModelBundle, manifest: str | Path | None = None) -> Path:
    """Write the manifest (default `<weights>.json`) with the weights' SHA-256 and the versions; atomic."""
    weights = Path(bundle.source)
    manifest = Path(manifest) if manifest is not None else manifest_path(weights)
    bundle.sha256 = sha256_file(weights)
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


COUNT_KEYS = ("n", "n_real", "n_fake", "ci_level", "n_bootstrap", "threshold", "temperature")


def test_metrics_summary(results: dict[str, Any], data: str, checkpoint: str | Path) -> dict[str, Any]:
    """The metrics with CIs of a test run, the counts behind them, the data and the weights file scored."""
    from deepfake_lightning.evaluation.metrics import METRIC_NAMES

    metrics = {k: results[k] for k in METRIC_NAMES if isinstance(results.get(k), dict)}
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


def checkpoint_bundle(
    ckpt_path: str | Path,
    calibration: dict[str, Any],
    calibration_file: str | Path | None,
    training_data: dict[str, Any] | None,
    test_metrics: dict[str, Any] | None,
) -> ModelBundle:
    """The bundle of a checkpoint as a run leaves it: the checkpoint's own hyperparameters, the calibration the
    run applied (fitted on validation and saved in `calibration_file`, or the uncalibrated record), the
    training data and the test metrics."""
    from deepfake_lightning.checkpoints import read_checkpoint

    ckpt_path = Path(ckpt_path).resolve()
    bundle = bundle_from_hparams(ckpt_path, read_checkpoint(ckpt_path)["hyper_parameters"])
    apply_calibration(bundle, calibration, str(calibration_file) if calibration_file else None)
    bundle.training_data, bundle.test_metrics = training_data, test_metrics
    return bundle
