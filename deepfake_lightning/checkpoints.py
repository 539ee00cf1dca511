"""Moved to `deepfake_lightning.bundle` (`open_model`); kept while the consumers move to it."""

from deepfake_lightning.bundle.checkpoint_file import (
    HPARAM_KEYS,
    load_detector_module,
    mismatched_tensors,
    read_checkpoint,
)
from deepfake_lightning.bundle.errors import CheckpointError
from deepfake_lightning.bundle.resume import RESUME_KEYS, check_resumable, find_last_checkpoint

__all__ = [
    "HPARAM_KEYS",
    "RESUME_KEYS",
    "CheckpointError",
    "check_resumable",
    "find_last_checkpoint",
    "load_detector_module",
    "mismatched_tensors",
    "read_checkpoint",
]
