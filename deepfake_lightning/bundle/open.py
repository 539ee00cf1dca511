"""`open_model`: the one door to a trained model, whatever file it is given.

A `.ckpt`, an exported `.onnx` (or TorchScript `.pt`) or a bundle manifest (`best.ckpt.json`, an eval's
`bundle.json`) comes back as one `LoadedModel`: the network rebuilt from the checkpoint (or the export's path),
the preprocessing, the temperature, the threshold and the rule that chose it, the training data and the test
metrics. Each file is read once and the weights are hashed once per call, so a consumer never opens a sibling
file or the checkpoint again: eval, robustness, predict, serve, export, bench, calibrate and train all start here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from deepfake_lightning.bundle.calibration_file import (
    apply_calibration,
    check_calibration_matches,
    is_off,
    read_calibration,
)
from deepfake_lightning.bundle.checkpoint_file import module_from_checkpoint, read_checkpoint
from deepfake_lightning.bundle.errors import BundleError
from deepfake_lightning.bundle.record import (
    ModelBundle,
    bundle_from_hparams,
    bundle_from_record,
    format_of,
    read_manifest,
)
from deepfake_lightning.bundle.training_config import TrainingConfig, training_config
from deepfake_lightning.modules import DetectorModule
from deepfake_lightning.utils.hashing import sha256_file

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A trained model as `open_model` found it: its record (`bundle`) and, for a checkpoint, the rebuilt module.

    `bundle` holds what turns pixels into a calibrated, thresholded p_fake (preprocessing, temperature,
    threshold and rule) and the model's record (training data, test metrics, SHA-256, versions); `hparams` are
    the checkpoint's raw hyperparameters.
    """

    bundle: ModelBundle
    module: DetectorModule | None = None
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The weights file: the checkpoint, or the export."""
        return Path(self.bundle.source)

    @property
    def format(self) -> str:
        return self.bundle.format

    @property
    def sha256(self) -> str | None:
        return self.bundle.sha256

    @property
    def net(self) -> nn.Module:
        """The plain network (`DeepfakeDetector`) of a checkpoint, in eval mode on the CPU."""
        if self.module is None:
            raise BundleError(f"{self.path}: a {self.format} export has no PyTorch network; open the .ckpt")
        return self.module.net

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.bundle.preprocessing

    @property
    def temperature(self) -> float:
        return self.bundle.temperature

    @property
    def threshold(self) -> float:
        return self.bundle.threshold

    @property
    def threshold_rule(self) -> str:
        return self.bundle.threshold_rule or "fixed"

    @property
    def training_data(self) -> dict[str, Any] | None:
        return self.bundle.training_data

    @property
    def test_metrics(self) -> dict[str, Any] | None:
        return self.bundle.test_metrics

    def calibration_record(self) -> dict[str, Any]:
        """The temperature/threshold record eval and robustness report (``results["calibration"]``)."""
        return self.bundle.calibration_record()

    def training_config(self) -> TrainingConfig | None:
        """The data config it was trained with (recorded, else its run's config.yaml); None when unknown."""
        return training_config(self.bundle.training_data, self.path, self.bundle.manifest)


def _record_of_checkpoint(weights: Path, hparams: dict[str, Any], manifest: Path) -> ModelBundle:
    log.warning(
        "%s has no bundle manifest %s beside it (it was not written by train, eval or export): "
        "uncalibrated, T=1 and the checkpoint's threshold",
        weights,
        manifest.name,
    )
    return bundle_from_hparams(weights, hparams)


def _calibrate(bundle: ModelBundle, calibration: str | Path | None) -> None:
    """``auto`` keeps the bundle's own; None/none gives T=1 and the configured threshold; a path replaces it."""
    if is_off(calibration):
        apply_calibration(bundle, None, None)
        return
    if str(calibration) == "auto":
        return
    source = Path(str(calibration))
    if source.resolve() == Path(bundle.manifest or "").resolve():  # its own manifest: the same as auto
        return
    record = read_calibration(source)
    check_calibration_matches(record, bundle, source)
    apply_calibration(bundle, record, str(source))


def open_model(
    path: str | Path, calibration: str | Path | None = "auto", threshold: float | None = None
) -> LoadedModel:
    """Open a `.ckpt`, an `.onnx`/`.pt` export or a bundle manifest.

    `calibration`: ``auto`` keeps the bundle's own temperature and threshold; None (or ``none``) gives T=1 and
    the configured threshold; a path (a ``calibration.json`` or another bundle) replaces them, if it was
    fitted for these weights. `threshold` overrides the decision threshold (its rule becomes ``given``).
    Weights whose SHA-256 differs from their manifest are refused; so is an export without its manifest.
    """
    weights, manifest, record = read_manifest(path)
    if not weights.is_file():
        raise BundleError(f"{weights}: model file not found" + (f" (named by {manifest})" if record else ""))
    fmt = str(record.get("format") or format_of(weights)) if record else format_of(weights)
    module, hparams = None, {}
    if fmt == "ckpt":  # a damaged, foreign or code-running file is named before anything in its bundle
        checkpoint = read_checkpoint(weights)
        module = module_from_checkpoint(weights, checkpoint)
        hparams = dict(checkpoint["hyper_parameters"])
    elif record is None:
        raise BundleError(
            f"{weights}: bundle {manifest.name} not found beside it; export with "
            "python -m deepfake_lightning.export, which writes both"
        )
    sha256 = sha256_file(weights)
    if record is None:
        bundle = _record_of_checkpoint(weights, hparams, manifest)
        bundle.sha256 = sha256
    else:
        bundle = bundle_from_record(record, weights, manifest)
        if sha256 != bundle.sha256:
            raise BundleError(
                f"{weights}: SHA-256 differs from the one recorded in {manifest}; the weights changed after "
                "the bundle was written (re-run eval or export to record these weights)"
            )
    _calibrate(bundle, calibration)
    if module is not None:
        attention = getattr(module.net, "attention", None)
        bundle.attention = bool(attention is not None and getattr(attention, "enabled", False))
    if threshold is not None:
        bundle.threshold, bundle.threshold_rule = float(threshold), "given"
    return LoadedModel(bundle, module, hparams)
