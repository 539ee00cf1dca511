"""A SLURM job that was restarted continues from its own ``checkpoints/last.ckpt``.

SLURM restarts a batch job in place when it is requeued: ``scontrol requeue``, a preemption with
``--requeue``, or submitit's checkpoint signal (``scancel --signal=USR2``, or the warning before
``timeout_min`` when ``max_num_timeout`` > 0), which requeues the same pickled Hydra job. The restarted job
runs in the same job dir with ``SLURM_RESTART_COUNT`` > 0; without this it would train again from scratch and
overwrite its checkpoints. ``ckpt_path=...`` given explicitly always wins.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)


def slurm_restart_count() -> int:
    """How many times SLURM restarted this job (0 outside SLURM or on the first run)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def requeued_checkpoint(output_dir: str | Path) -> Path | None:
    """This run dir's ``checkpoints/last.ckpt`` when SLURM restarted the job and the file is complete."""
    restarts = slurm_restart_count()
    if restarts == 0:
        return None
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if not last.is_file():
        log.info(
            "SLURM restarted this job (restart %d) before its first checkpoint: training from the start",
            restarts,
        )
        return None
    if not zipfile.is_zipfile(last):  # torch.save writes a zip, its directory last: killed while saving
        log.warning(
            "SLURM restarted this job (restart %d); %s is incomplete: training from the start", restarts, last
        )
        return None
    log.info("SLURM restarted this job (restart %d): resuming from %s", restarts, last)
    return last
