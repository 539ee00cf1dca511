"""Hydra callback: after every multirun (basic sweeps, Optuna, SLURM), summarise the jobs in the sweep dir."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.sweeps.summary import write_sweep_summary

log = logging.getLogger(__name__)


class SweepSummaryCallback(Callback):
    """Reads the job dirs rather than the jobs' return values, so it also works with remote launchers and
    after a resumed Optuna search (the jobs of earlier sessions are in the same dir)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        if not sweep_dir.is_dir():
            log.warning("no sweep dir at %s: nothing to summarise", sweep_dir)
            return
        metric = OmegaConf.select(config, "optimized_metric", default=None)
        try:
            json_path, csv_path = write_sweep_summary(sweep_dir, metric)
        except OSError as err:
            log.error("could not write the sweep summary in %s: %s", sweep_dir, err)
            return
        log.info("sweep summary: %s, %s", json_path, csv_path)
