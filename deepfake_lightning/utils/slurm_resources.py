"""What a SLURM job asks for, derived from the run's own settings (``conf/hydra/launcher/slurm.yaml``).

OmegaConf resolvers (``deepfake_lightning/utils/resolvers.py``), resolved on the submitting machine:

- ``${dfl_slurm_gpus:${trainer.accelerator},${trainer.devices}}``: one GPU per device for ``gpu``/``cuda``,
  none for ``cpu``. ``auto`` cannot know what the compute nodes have; it asks for none, with a warning, because a
  GPU request on a CPU-only partition is refused at submission while the reverse only runs slower.
- ``${dfl_slurm_cpus:${oc.select:data.num_workers,null}}``: the DataLoader workers plus the main process.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)
_GPU_ACCELERATORS = ("gpu", "cuda")


def gpus_per_node(accelerator: Any, devices: Any) -> int | None:
    """GPUs to request per node: ``devices`` for a GPU accelerator, else none (null: no ``--gpus-per-node``)."""
    name = str(accelerator).lower()
    if name in _GPU_ACCELERATORS:
        return int(devices) if isinstance(devices, int) else None
    if name == "auto":
        _warn_auto()
    return None


@cache
def _warn_auto() -> None:  # once per process: the launcher config is resolved more than once
    log.warning(
        "hydra/launcher=slurm: trainer.accelerator=auto requests no GPUs; for GPU jobs pass trainer=gpu or "
        "trainer=ddp (one GPU per device), or hydra.launcher.gpus_per_node=N"
    )


def cpus_per_task(num_workers: Any) -> int:
    """One CPU for the training process and one per DataLoader worker (null workers: 4, predict's default)."""
    workers = 4 if num_workers is None else max(0, int(num_workers))
    return workers + 1
