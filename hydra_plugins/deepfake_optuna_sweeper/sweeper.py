"""The sweeper: ask Optuna for trials, launch them as Hydra jobs (job number = trial number), tell results."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import Trial, TrialState

from hydra_plugins.deepfake_optuna_sweeper.search_space import SearchSpace, format_value, parse_search_space
from hydra_plugins.deepfake_optuna_sweeper.study import (
    PRUNED_ATTR,
    existing_trials,
    finished_trials,
    open_storage,
    recover_interrupted,
    storage_location,
    write_results,
)

PRUNING_CALLBACK = "deepfake_lightning.callbacks.optuna_pruning.OptunaPruningCallback"

log = logging.getLogger(__name__)


def _objective_value(ret: JobReturn) -> float | None:
    """The task's return value, or None for a failed job, no metric, or a NaN."""
    if ret.status != JobStatus.COMPLETED:
        return None
    value = ret.return_value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _consecutive(trials: list[Trial]) -> list[list[Trial]]:
    """Trials split into runs of consecutive numbers: a launch numbers its jobs from one first index."""
    runs: list[list[Trial]] = []
    for trial in trials:
        if runs and trial.number == runs[-1][-1].number + 1:
            runs[-1].append(trial)
        else:
            runs.append([trial])
    return runs


class DeepfakeOptunaSweeper(Sweeper):
    def __init__(
        self,
        study_name: str,
        storage: str | None,
        direction: str,
        n_trials: int,
        n_jobs: int,
        sampler: Any,
        params: Any = None,
        pruner: Any = None,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.direction = direction
        self.n_trials = int(n_trials)
        self.n_jobs = max(1, int(n_jobs))
        self.sampler_cfg = OmegaConf.to_container(sampler, resolve=True) if sampler is not None else None
        self.params = OmegaConf.to_container(params, resolve=True) if params is not None else None
        self.pruner_cfg = OmegaConf.to_container(pruner, resolve=True) if pruner is not None else None
        self.sweep_dir = Path(".")
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _sampler(self, n_existing: int) -> optuna.samplers.BaseSampler | None:
        """Seeded, and re-seeded by the number of trials already stored so a resumed search does not replay
        the random start-up trials of the first session."""
        if not self.sampler_cfg:
            return None
        cfg = dict(self.sampler_cfg)
        if cfg.get("seed") is not None:
            cfg["seed"] = int(cfg["seed"]) + n_existing
        return instantiate(cfg)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        space = parse_search_space(self.params, arguments)
        if not space.dimensions:
            raise ValueError("hydra.sweeper.params is empty and the command line holds no sweep")
        sweep_dir = self.sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        storage = open_storage(self.storage, sweep_dir)
        n_existing = existing_trials(storage, self.study_name)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self._sampler(n_existing),
            pruner=instantiate(self.pruner_cfg) if self.pruner_cfg else None,
            direction=self.direction,
            load_if_exists=True,
        )
        recover_interrupted(study)
        remaining = self.n_trials - finished_trials(study)
        log.info(
            "study %r in %s: %d of %d trials done, %d to run",
            self.study_name,
            sweep_dir,
            self.n_trials - max(remaining, 0),
            self.n_trials,
            max(remaining, 0),
        )
        returns: list[Sequence[JobReturn]] = []
        while remaining > 0:
            batch = [study.ask(space.distributions) for _ in range(min(self.n_jobs, remaining))]
            for run in _consecutive(batch):
                returns.append(self._launch(study, space, run))
            remaining -= len(batch)
        results = write_results(study, sweep_dir / "optimization_results.json")
        if "best" in results:
            log.info("best trial %(trial)s: %(value)s %(params)s", results["best"])
        return returns

    def _pruning_override(self, study: optuna.Study, trial: Trial) -> list[str]:
        if not self.pruner_cfg:
            return []
        callback = {
            "_target_": PRUNING_CALLBACK,
            "storage": storage_location(self.storage, self.sweep_dir),
            "study_name": study.study_name,
            "trial_number": trial.number,
            "monitor": str(self.config.get("optimized_metric")),
            "pruner": self.pruner_cfg,
        }
        return [f"+callbacks.optuna_pruning={format_value(callback)}"]

    def _launch(self, study: optuna.Study, space: SearchSpace, trials: list[Trial]) -> Sequence[JobReturn]:
        overrides = [space.overrides(trial.params) + self._pruning_override(study, trial) for trial in trials]
        self.validate_batch_is_legal(overrides)
        for trial, job_overrides in zip(trials, overrides, strict=True):
            trial.set_user_attr("overrides", job_overrides)
        job_returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        for trial, ret in zip(trials, job_returns, strict=True):
            value = _objective_value(ret)
            attrs = study._storage.get_trial(trial._trial_id).user_attrs
            if PRUNED_ATTR in attrs:
                study.tell(trial, state=TrialState.PRUNED)
                log.info("trial %d pruned after epoch %d", trial.number, attrs[PRUNED_ATTR])
            elif value is None:
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed or returned no metric", trial.number)
            else:
                study.tell(trial, value)
        return job_returns
