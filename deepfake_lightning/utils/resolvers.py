"""The package's OmegaConf resolvers, registered when ``deepfake_lightning`` is imported (its ``__init__``), so
every composition of ``conf/`` resolves them: entry points, tests and notebooks alike.

- ``${dfl_cwd:}``: the working directory. ``conf/paths/default.yaml`` used ``${hydra:runtime.cwd}``, which
  Hydra sets only inside a job: a multirun resolving ``hydra.sweep.dir`` (its callbacks, the submitit
  launcher's folder) stopped with "HydraConfig was not set". Jobs never change directory (``hydra.job.chdir:
  false``), so both give the same folder.
- ``${dfl_slurm_gpus:...}``, ``${dfl_slurm_cpus:...}``: what a SLURM job asks for (``slurm_resources.py``).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

from deepfake_lightning.utils.slurm_resources import cpus_per_task, gpus_per_node

RESOLVERS = {"dfl_cwd": os.getcwd, "dfl_slurm_gpus": gpus_per_node, "dfl_slurm_cpus": cpus_per_task}


def register() -> None:
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register()
