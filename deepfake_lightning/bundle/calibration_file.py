"""`calibration.json`: a temperature and threshold fitted on validation, written and read only here.

The record names the weights it was fitted for (`checkpoint_sha256`); a bundle applies it only to those weights
(or to an export of them), because a threshold chosen for one network means nothing for another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepfake_lightning.bundle.errors import BundleError
from deepfake_lightning.bundle.record import UNCALIBRATED, ModelBundle, read_json
from deepfake_lightning.utils.config_schema import ConfigError, check_threshold

CALIBRATION_FILE = "calibration.json"
OFF = ("none", "null", "off")


def is_off(calibration: str | Path | None) -> bool:
    """`calibration=None` (or none/null/off): T=1 and the checkpoint's configured threshold."""
    return calibration is None or str(calibration).lower() in OFF


def read_calibration(path: str | Path) -> dict[str, Any]:
    """A ``calibration.json`` (or a bundle manifest's calibration), validated; errors name the file."""
    path = Path(path)
    record = read_json(path, "calibration")
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
    if threshold is not None:
        try:
            check_threshold(threshold)
        except ConfigError as err:
            raise BundleError(f"{path}: {err}") from None
    return record


def write_calibration(output_dir: str | Path, record: dict[str, Any]) -> Path:
    """`OUTPUT_DIR/calibration.json` holding `record` (its temperature must be > 0); returns the path."""
    temperature = record.get("temperature")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    path = Path(output_dir) / CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({**record, "temperature": float(temperature)}, indent=2, sort_keys=True) + "\n"
    )
    return path


def run_calibration(run_dir: str | Path) -> dict[str, Any] | None:
    """The calibration a run fitted (`RUN/calibration.json`), or None when it fitted none."""
    path = Path(run_dir) / CALIBRATION_FILE
    return {**read_calibration(path), "source": str(path)} if path.is_file() else None


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
