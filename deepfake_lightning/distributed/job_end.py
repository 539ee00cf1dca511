"""Hydra callback that closes a DDP job's process group, so the next job of a multirun starts clean."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from deepfake_lightning.distributed.hydra_ddp import end_ddp_job


class DDPJobEndCallback(Callback):
    """Runs in the job's process after the task returns (with any launcher); see ``hydra_ddp.end_ddp_job``."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        end_ddp_job()
