"""What a deployed model needs besides its weights: preprocessing, temperature, threshold -- and where they live.

A checkpoint carries preprocessing and a default threshold in its hyperparameters; the run's calibration
record (written from validation data) overrides temperature and threshold. An exported model carries all of
it in `MODEL.json` beside it, with the SHA-256 of the model file so a swapped file is refused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepfake_lightning.evaluation.calibration import load_calibration

METADATA_VERSION = 1
CALIBRATION_FILE = "calibration.json"
METADATA_EXTRAS = ("format", "sha256", "package_version", "quantization", "checkpoint_threshold")


class ModelFileError(ValueError):
    """A model, metadata or calibration file that cannot be used; the message names it."""


@dataclass
class ModelInfo:
    """Everything inference needs to turn pixels into a calibrated, thresholded p_fake."""

    preprocessing: dict[str, Any]
    threshold: float = 0.5
    temperature: float = 1.0
    threshold_rule: str | None = None
    calibration_source: str | None = None
    attention: bool = False
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def calibration_candidates(ckpt_path: str | Path) -> list[Path]:
    """`RUN/checkpoints/x.calibration.json` (specific to one checkpoint) first, then `RUN/calibration.json`."""
    ckpt = Path(ckpt_path)
    return [ckpt.with_suffix(".calibration.json"), ckpt.parent.parent / CALIBRATION_FILE]


def read_calibration(path: str | Path) -> dict[str, Any]:
    """`{"temperature", "threshold"?, "threshold_rule"?}` validated, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"calibration={str(path)!r}: file not found")
    try:
        record = load_calibration(path)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: not valid JSON ({err})") from None
    except ValueError as err:
        raise ModelFileError(str(err)) from None
    threshold = record.get("threshold")
    if threshold is not None and (not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0):
        raise ModelFileError(f"{path}: threshold={threshold!r}; expected a number in [0, 1]")
    return record


def resolve_calibration(ckpt_path: str | Path, calibration: str | Path | None = "auto") -> Path | None:
    """`auto`: the first existing candidate; `none`/None: no calibration; anything else: that file."""
    if calibration is None or str(calibration).lower() in ("none", "null", "off"):
        return None
    if str(calibration) == "auto":
        return next((p for p in calibration_candidates(ckpt_path) if p.is_file()), None)
    return Path(calibration)


def apply_calibration(info: ModelInfo, path: Path | None) -> ModelInfo:
    """Temperature and (when present) threshold from the record; the record's path is kept for reports."""
    if path is None:
        return info
    record = read_calibration(path)
    info.temperature = float(record["temperature"])
    if record.get("threshold") is not None:
        info.threshold = float(record["threshold"])
    info.threshold_rule = record.get("threshold_rule")
    info.calibration_source = str(path)
    return info


def metadata_path(model_path: str | Path) -> Path:
    """`model.onnx` -> `model.onnx.json` (unambiguous for every format)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def package_version() -> str:
    try:
        return importlib.metadata.version("deepfake_lightning")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def write_metadata(model_path: Path, info: ModelInfo, fields: dict[str, Any]) -> Path:
    record = {
        "metadata_version": METADATA_VERSION,
        "package_version": package_version(),
        "model_file": model_path.name,
        "sha256": sha256_file(model_path),
        **info.to_dict(),
        **fields,
    }
    path = metadata_path(model_path)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_metadata(model_path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read `MODEL.json`; with `verify`, refuse a model file whose SHA-256 differs from the recorded one."""
    model_path = Path(model_path)
    path = metadata_path(model_path)
    if not model_path.is_file():
        raise ModelFileError(f"{model_path}: model file not found")
    if not path.is_file():
        raise ModelFileError(
            f"{model_path}: metadata {path.name} not found beside it; export with python -m deepfake_lightning.export"
        )
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path}: not valid JSON ({err})") from None
    missing = {"preprocessing", "threshold", "temperature", "sha256"} - set(
        record if isinstance(record, dict) else {}
    )
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {sorted(missing)}")
    if verify and sha256_file(model_path) != record["sha256"]:
        raise ModelFileError(
            f"{model_path}: SHA-256 differs from {path.name}; the model file changed after export"
        )
    return record


def info_from_metadata(record: dict[str, Any], model_path: Path) -> ModelInfo:
    return ModelInfo(
        preprocessing=record["preprocessing"],
        threshold=float(record["threshold"]),
        temperature=float(record["temperature"]),
        threshold_rule=record.get("threshold_rule"),
        calibration_source=record.get("calibration_source"),
        attention=bool(record.get("attention", False)),
        source=str(model_path),
        extra={k: record[k] for k in METADATA_EXTRAS if k in record},
    )


def info_from_module(
    module: Any, ckpt_path: str | Path, calibration: str | Path | None = "auto"
) -> ModelInfo:
    """Preprocessing and default threshold from the checkpoint, then the run's calibration record on top."""
    hparams = module.hparams
    attention = getattr(module.net, "attention", None)
    info = ModelInfo(
        preprocessing=dict(hparams["preprocessing"]),
        threshold=float(hparams.get("threshold", 0.5)),
        attention=bool(attention is not None and getattr(attention, "enabled", False)),
        source=str(ckpt_path),
    )
    return apply_calibration(info, resolve_calibration(ckpt_path, calibration))
