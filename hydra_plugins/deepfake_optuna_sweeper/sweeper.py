"""The sweeper: ask Optuna for trials, launch them as Hydra jobs (job number = trial number), tell results."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from optuna.storages import fail_stale_trials
from optuna.trial import Trial, TrialState

from hydra_plugins.deepfake_optuna_sweeper.heartbeat import heartbeats
from hydra_plugins.deepfake_optuna_sweeper.search_space import SearchSpace, format_value, parse_search_space
from hydra_plugins.deepfake_optuna_sweeper.storage import (
    hide_password,
    is_url,
    open_storage,
    safe_url,
    storage_location,
)
from hydra_plugins.deepfake_optuna_sweeper.study import (
    NOT_RUN,
    PRUNED_ATTR,
    WORKER,
    budget_trials,
    existing_trials,
    finished_trials,
    place_in_budget,
    recover_interrupted,
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
        heartbeat_interval: int | None = 60,
        grace_period: int | None = None,
        max_retry: int | None = 1,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "max_retry": max_retry,
        }
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
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

    def _sampler(self, n_existing: int, shared: bool) -> optuna.samplers.BaseSampler | None:
        """Seeded, and re-seeded by the number of trials already stored so a resumed search does not replay
        the random start-up trials of the first session. Workers sharing a database also mix in their host and
        process id: two started at the same moment would otherwise draw the same start-up trials."""
        if not self.sampler_cfg:
            return None
        cfg = dict(self.sampler_cfg)
        if cfg.get("seed") is not None:
            seed = int(cfg["seed"]) + n_existing
            if shared:  # a sum would collide (pids are consecutive, n_existing differs by a trial or two)
                entropy = [seed, os.getpid(), zlib.crc32(socket.gethostname().encode())]
                seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
            cfg["seed"] = seed
        return instantiate(cfg)

    def _hide_storage_password(self) -> None:
        """A password in the storage URL moves to the environment (``storage.hide_password``); the config that
        jobs are composed from, multirun.yaml and every job's .hydra/ then hold the URL without it."""
        if not is_url(self.storage):
            return
        self.storage = hide_password(str(self.storage))
        assert self.config is not None
        with read_write(self.config), open_dict(self.config):
            self.config.hydra.sweeper.storage = self.storage
            kept = [
                o for o in self.config.hydra.overrides.hydra if not o.startswith("hydra.sweeper.storage=")
            ]
            self.config.hydra.overrides.hydra = [*kept, f"hydra.sweeper.storage={format_value(self.storage)}"]

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        space = parse_search_space(self.params, arguments)
        if not space.dimensions:
            raise ValueError("hydra.sweeper.params is empty and the command line holds no sweep")
        sweep_dir = self.sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._hide_storage_password()
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        shared = is_url(self.storage)  # a database other sweeper processes may share
        storage = open_storage(self.storage, sweep_dir, **(self.heartbeat if shared else {}))
        n_existing = existing_trials(storage, self.study_name)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self._sampler(n_existing, shared),
            pruner=instantiate(self.pruner_cfg) if self.pruner_cfg else None,
            direction=self.direction,
            load_if_exists=True,
        )
        if not shared:  # a journal file has one sweeper: whatever is RUNNING was interrupted
            recover_interrupted(study)
        done = finished_trials(study)
        where = safe_url(str(self.storage)) if shared else str(sweep_dir)
        log.info(
            "study %r in %s: %d of %d trials done, %d to run%s",
            self.study_name,
            where,
            min(done, self.n_trials),
            self.n_trials,
            max(self.n_trials - done, 0),
            f" (shared: worker {self.worker})" if shared else "",
        )
        returns: list[Sequence[JobReturn]] = []
        while True:
            batch = self._ask(study, space)
            if batch is None:
                break
            for run in _consecutive(batch):
                returns.append(self._launch(study, space, run))
        results = write_results(study, sweep_dir / "optimization_results.json")
        if "best" in results:
            log.info("best trial %(trial)s: %(value)s %(params)s", results["best"])
        return returns

    def _ask(self, study: optuna.Study, space: SearchSpace) -> list[Trial] | None:
        """Up to ``n_jobs`` trials for this worker; None when the study has ``n_trials`` finished.

        Other workers may share the study: their RUNNING trials hold places in the budget, a trial whose worker
        died is failed by ``fail_stale_trials`` (heartbeat) and its retry runs here, and a trial asked after the
        last place was taken is recorded as failed with ``not_run`` and never launched.
        """
        while True:
            # trials of dead workers -> FAIL, queued again; a no-op without heartbeats (journal file, or
            # heartbeat_interval=null). "Experimental" since Optuna 2.9: the warning says nothing to a user here
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)
            budget = budget_trials(study.get_trials(deepcopy=False))
            queued = sum(t.state == TrialState.WAITING for t in budget)
            free = self.n_trials - len(budget) + queued
            if free > 0:
                break
            running = [t.number for t in budget if t.state == TrialState.RUNNING]
            if not running or not self.heartbeat.get("heartbeat_interval"):
                return None
            # places held by other workers' trials: wait until they finish, or are found dead and queued again
            log.info("waiting for trials %s of other workers", running)
            time.sleep(float(self.heartbeat["heartbeat_interval"]))
        batch: list[Trial] = []
        for _ in range(min(self.n_jobs, free)):
            with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": heartbeat.py
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask(space.distributions)
            if place_in_budget(study, trial.number) > self.n_trials:
                trial.set_user_attr(NOT_RUN, f"the study had {self.n_trials} trials when {self.worker} asked")
                study.tell(trial, state=TrialState.FAIL)
                log.info("trial %d not run: another worker took the last place", trial.number)
                break
            trial.set_user_attr(WORKER, self.worker)
            batch.append(trial)
        return batch

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
        with heartbeats(study._storage, [trial._trial_id for trial in trials]):
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
