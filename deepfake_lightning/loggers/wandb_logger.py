"""`logger=wandb`: a Lightning WandbLogger whose group, job type and name come from the Hydra run.

W&B fixes group and job type when the run starts, so they are worked out here rather than in a callback:
plain runs are grouped by experiment, the jobs of a multirun (or an Optuna study) by their sweep dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf


def _hydra() -> Any:
    return HydraConfig.get() if HydraConfig.initialized() else None


def wandb_run_names(hydra_cfg: Any = None) -> dict[str, str]:
    """``group``, ``job_type`` and ``name`` for the current Hydra job (empty outside Hydra)."""
    hydra_cfg = hydra_cfg if hydra_cfg is not None else _hydra()
    if hydra_cfg is None:
        return {}

    def get(key: str) -> Any:
        return OmegaConf.select(hydra_cfg, key, default=None)

    experiment = get("runtime.choices.experiment") or get("job.name") or "run"
    if get("mode") == RunMode.MULTIRUN:
        sweep = Path(str(get("sweep.dir"))).name
        label = get("job.override_dirname") or ""
        return {
            "group": f"{experiment}/{sweep}",
            "job_type": "optuna" if "optuna" in str(get("sweeper._target_")).lower() else "sweep",
            "name": f"{sweep}/{get('job.num')}" + (f" {label}" if label else ""),
        }
    output_dir = get("runtime.output_dir")
    names = {"group": str(experiment), "job_type": "train"}
    if output_dir:
        names["name"] = Path(str(output_dir)).name
    return names


def wandb_logger(
    group: str | None = None,
    job_type: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """``group``/``job_type``/``name`` left null are filled from Hydra; multirun jobs are tagged ``sweep``."""
    names = wandb_run_names()
    tags = list(tags or [])
    if names.get("job_type") in ("sweep", "optuna") and names["job_type"] not in tags:
        tags.append(names["job_type"])
    return WandbLogger(
        group=group or names.get("group"),
        job_type=job_type or names.get("job_type"),
        name=name or names.get("name"),
        tags=tags,
        **kwargs,
    )
