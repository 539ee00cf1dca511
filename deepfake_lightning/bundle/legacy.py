"""The readers before `open_model`, kept while the consumers move to it (removed once none calls them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_lightning.bundle.calibration_file import apply_calibration
from deepfake_lightning.bundle.open import open_model
from deepfake_lightning.bundle.record import ModelBundle, bundle_from_hparams


def load_bundle(
    path: str | Path, calibration: str | Path | None = "auto", verify: bool = True
) -> ModelBundle:
    """`open_model(path, calibration).bundle` (`verify` is ignored: the SHA-256 is always checked)."""
    del verify
    return open_model(path, calibration).bundle


def checkpoint_bundle(
    ckpt_path: str | Path,
    calibration: dict[str, Any],
    calibration_file: str | Path | None,
    training_data: dict[str, Any] | None,
    test_metrics: dict[str, Any] | None,
) -> ModelBundle:
    """The bundle of a checkpoint as a run leaves it (use `write_model_bundle`)."""
    model = open_model(ckpt_path, calibration=None)
    bundle = bundle_from_hparams(Path(ckpt_path).resolve(), model.hparams)
    apply_calibration(bundle, calibration, str(calibration_file) if calibration_file else None)
    bundle.training_data, bundle.test_metrics = training_data, test_metrics
    return bundle
