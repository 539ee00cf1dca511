"""The model bundle: the only door to a trained model.

`open_model(path)` opens a `.ckpt`, an exported `.onnx`/`.pt` or a bundle manifest and returns a
`LoadedModel`: the network (or the export's path), the preprocessing, the temperature, the threshold and its
rule, the training data and the test metrics. `write_model_bundle` is the one writer of the manifest (train,
eval, export). Nothing outside this package calls `torch.load` or opens `calibration.json`
(`tests/test_model_door.py` checks it).

    record.py            ModelBundle and the manifest on disk (`<weights>.json`)
    open.py              open_model, LoadedModel
    writer.py            write_model_bundle and the summaries it records
    score_distribution.py  the validation logits' histogram a bundle records (the service's drift reference)
    checkpoint_file.py   the weights-only checkpoint read and the module rebuilt from it
    calibration_file.py  calibration.json: written, read, checked against the weights
    training_config.py   the data config a model was trained with
    resume.py            ckpt_path=last and the resume check
    exported.py          a TorchScript export read back
"""

from deepfake_lightning.bundle.calibration_file import (
    CALIBRATION_FILE,
    read_calibration,
    run_calibration,
    write_calibration,
)
from deepfake_lightning.bundle.checkpoint_file import read_checkpoint
from deepfake_lightning.bundle.errors import BundleError, CheckpointError
from deepfake_lightning.bundle.exported import load_torchscript
from deepfake_lightning.bundle.open import LoadedModel, open_model
from deepfake_lightning.bundle.record import ModelBundle, manifest_path, package_version
from deepfake_lightning.bundle.resume import check_resumable, find_last_checkpoint
from deepfake_lightning.bundle.score_distribution import check_score_distribution, score_distribution
from deepfake_lightning.bundle.training_config import TrainingConfig
from deepfake_lightning.bundle.writer import (
    Export,
    summarize_test_metrics,
    training_data_summary,
    write_model_bundle,
)

__all__ = [
    "CALIBRATION_FILE",
    "BundleError",
    "CheckpointError",
    "Export",
    "LoadedModel",
    "ModelBundle",
    "TrainingConfig",
    "check_resumable",
    "check_score_distribution",
    "find_last_checkpoint",
    "load_torchscript",
    "manifest_path",
    "open_model",
    "package_version",
    "read_calibration",
    "read_checkpoint",
    "run_calibration",
    "score_distribution",
    "summarize_test_metrics",
    "training_data_summary",
    "write_calibration",
    "write_model_bundle",
]
