"""A Lightning `.ckpt` read safely (`torch.load(weights_only=True)`) and rebuilt into its `DetectorModule`.

The only `torch.load` of a user's checkpoint in the package: a pickle that would run code is refused, never
executed, and every error names the file and what is wrong with it.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.bundle.errors import CheckpointError
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
    "nonfinite_loss",
)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """`torch.load(weights_only=True)`: a pickle that would run code is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):  # torch.save (and Lightning) write a zip archive
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint (not the zip archive torch.save writes: random "
                "bytes, a truncated file or a plain pickle); nothing in it was unpickled"
            ) from None
        raise CheckpointError(
            f"{path}: refused to unpickle ({_refusal(err)}); only checkpoints holding tensors and plain values "
            "load (weights_only=True), and nothing in this one was run"
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


def _refusal(err: pickle.UnpicklingError) -> str:
    """torch's message starts with advice to load unsafely; keep only what the file asked for."""
    found = re.search(r"(?:Unsupported global: |unsupported )GLOBAL (\S+)", str(err))  # torch <2.9, >=2.9
    if found:
        return f"it needs {found.group(1)}, which a weights-only load never imports"
    return str(err).strip().splitlines()[-1][:200]


def module_from_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> DetectorModule:
    """Rebuild the DetectorModule from the checkpoint's own hyperparameters, in eval mode on the CPU."""
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in HPARAM_KEYS}
    try:
        module = DetectorModule(**hparams)
        differ = mismatched_tensors(module.state_dict(), checkpoint["state_dict"])
        if not differ:
            module.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, TypeError, ValueError) as err:
        differ = [str(err).strip().splitlines()[0]]
    if differ:
        raise CheckpointError(
            f"{path}: does not match the advanced_v2 architecture it describes ({len(differ)} tensor(s) "
            f"missing, unexpected or of another shape, e.g. {differ[0]})"
        ) from None
    return module.eval()


def mismatched_tensors(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Names present on one side only, then names whose shapes differ."""
    shapes = [
        k for k in ours if k in theirs and tuple(ours[k].shape) != tuple(getattr(theirs[k], "shape", ()))
    ]
    return sorted(set(ours) ^ set(theirs)) + shapes
