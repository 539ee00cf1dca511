"""Load user-supplied checkpoints safely (`weights_only=True`) with errors that say what is wrong."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.modules import DetectorModule

HPARAM_KEYS = (
    "backbone",
    "attention",
    "head",
    "loss",
    "optimizer",
    "scheduler",
    "threshold",
    "preprocessing",
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the reason."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """`torch.load(weights_only=True)`: a pickle that would run code is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to unpickle ({str(err).splitlines()[0]}); only checkpoints holding tensors and "
            "plain values load (weights_only=True)"
        ) from None
    except Exception as err:  # truncated zip, random bytes, not a torch file
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({err.__class__.__name__}: {err})"
        ) from None
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        kind = "a plain state_dict" if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path}: holds {kind}; expected a Lightning .ckpt written by deepfake_lightning.train "
            "(keys state_dict and hyper_parameters)"
        )
    return checkpoint


def load_detector_module(path: str | Path) -> DetectorModule:
    """Rebuild the DetectorModule from the checkpoint's own hyperparameters, in eval mode on the CPU."""
    checkpoint = read_checkpoint(path)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in HPARAM_KEYS}
    try:
        module = DetectorModule(**hparams)
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: does not match the advanced_v2 architecture it describes ({first})"
        ) from None
    return module.eval()


def find_last_checkpoint(log_dir: str | Path, exclude: str | Path | None = None) -> Path:
    """Newest `checkpoints/last.ckpt` of any earlier train run, for `ckpt_path=last`."""
    candidates = [
        p
        for p in Path(log_dir).glob("train/**/checkpoints/last.ckpt")
        if exclude is None or Path(exclude) not in p.parents
    ]
    if not candidates:
        raise CheckpointError(f"ckpt_path=last: no checkpoints/last.ckpt under {log_dir}/train")
    return max(candidates, key=lambda p: p.stat().st_mtime)
