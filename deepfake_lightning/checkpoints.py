"""Load user-supplied checkpoints safely (`weights_only=True`) with errors that say what is wrong."""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepfake_lightning.modules import DetectorModule

log = logging.getLogger(__name__)
RESUME_KEYS = ("pytorch-lightning_version", "loops", "optimizer_states")
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
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if found:
        return f"it needs {found.group(1)}, which a weights-only load never imports"
    return str(err).strip().splitlines()[-1][:200]


def load_detector_module(path: str | Path) -> DetectorModule:
    """Rebuild the DetectorModule from the checkpoint's own hyperparameters, in eval mode on the CPU."""
    checkpoint = read_checkpoint(path)
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


def check_resumable(path: str | Path, module: DetectorModule, resume: bool = True) -> None:
    """Resuming needs a full Lightning checkpoint (loops, optimizer) of the network this config builds; testing
    it (``resume=False``: ``train=false test=true``) needs only the network."""
    checkpoint = read_checkpoint(path)
    absent = [key for key in RESUME_KEYS if key not in checkpoint]
    if resume and absent:
        raise CheckpointError(
            f"{path}: cannot resume from it: it has no {', '.join(absent)} (not a full Lightning training "
            "checkpoint such as RUN/checkpoints/last.ckpt)"
        )
    differ = mismatched_tensors(module.state_dict(), checkpoint["state_dict"])
    if differ and resume:
        raise CheckpointError(
            f"{path}: cannot resume: its network differs from the one this config builds ({len(differ)} "
            f"tensor(s), e.g. {differ[0]}); resume with the model settings the run was trained with"
        )
    if differ:
        raise CheckpointError(
            f"{path}: cannot test it: its network differs from the one this config builds ({len(differ)} "
            f"tensor(s), e.g. {differ[0]}); use the model settings it was trained with, or "
            f"python -m deepfake_lightning.eval ckpt_path={path}, which reads them from the checkpoint"
        )


def find_last_checkpoint(log_dir: str | Path, exclude: str | Path | None = None) -> Path:
    """Newest complete `checkpoints/last.ckpt` of any earlier train run, for `ckpt_path=last`.

    A process killed while writing leaves a truncated file: it is passed over with a warning for the
    next newest, so a crash during a save costs one epoch, not the whole run.
    """
    candidates = [
        p
        for p in Path(log_dir).glob("train/**/checkpoints/last.ckpt")
        if exclude is None or Path(exclude) not in p.parents
    ]
    if not candidates:
        raise CheckpointError(f"ckpt_path=last: no checkpoints/last.ckpt under {log_dir}/train")
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        if zipfile.is_zipfile(path):  # torch.save writes a zip; its directory is written last
            return path
        log.warning("ckpt_path=last: passing over %s: incomplete or not a checkpoint", path)
    raise CheckpointError(f"ckpt_path=last: every checkpoints/last.ckpt under {log_dir}/train is unreadable")
