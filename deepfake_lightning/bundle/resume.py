"""Which checkpoint a training run continues (`ckpt_path=last`) and whether it can: a full Lightning checkpoint
of the network this config builds."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from torch import nn

from deepfake_lightning.bundle.checkpoint_file import mismatched_tensors, read_checkpoint
from deepfake_lightning.bundle.errors import CheckpointError

log = logging.getLogger(__name__)
RESUME_KEYS = ("pytorch-lightning_version", "loops", "optimizer_states")


def check_resumable(path: str | Path, module: nn.Module, resume: bool = True) -> None:
    """Resuming needs a full Lightning checkpoint (loops, optimizer) of the network this config builds; testing
    it (``resume=False``: ``train=false test=true``) needs only the network. Lightning itself loads the weights
    (``trainer.fit/test(ckpt_path=...)``): this only names what is wrong first, in one line."""
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
