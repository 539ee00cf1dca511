"""Opening, resuming, budgeting and summarising the Optuna study that lives in the sweep dir or a database."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted"  # user attr of a trial that was RUNNING when a previous session stopped
PRUNED_ATTR = "pruned_at_epoch"  # user attr set by deepfake_lightning.callbacks.optuna_pruning
NOT_RUN = "not_run"  # user attr of a trial asked after the study already had n_trials (concurrent workers)
WORKER = "worker"  # user attr: host:pid of the sweeper process that ran the trial


def existing_trials(storage: BaseStorage | str, study_name: str) -> int:
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:
        return 0


def recover_interrupted(study: optuna.Study) -> int:
    """Trials left RUNNING by a stopped session are failed, flagged, and their parameters queued again.

    Only for a journal file, which one sweeper process owns; in a shared database another worker's RUNNING
    trial is alive, and the heartbeat (``storage.open_database``) finds the dead ones instead.
    """
    storage = study._storage
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        log.warning("trial %d was interrupted in an earlier session: it will be run again", trial.number)
    return len(stale)


def budget_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that take one of the ``n_trials`` places, by number: finished, running and queued ones.

    A trial failed by an interruption or a lost heartbeat and queued again gives its place to its retry; a trial
    asked by a worker after the budget was full (``NOT_RUN``) never ran and takes none.
    """
    with warnings.catch_warnings():  # retried_trial_number is "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials} - {None}
    kept = []
    for trial in trials:
        if trial.state == TrialState.FAIL and (
            trial.user_attrs.get(INTERRUPTED) or trial.user_attrs.get(NOT_RUN) or trial.number in retried
        ):
            continue
        kept.append(trial)
    return sorted(kept, key=lambda t: t.number)


def finished_trials(study: optuna.Study) -> int:
    """Completed, pruned and failed trials count towards ``n_trials``; interrupted and retried ones do not."""
    return sum(t.state.is_finished() for t in budget_trials(study.get_trials(deepcopy=False)))


def place_in_budget(study: optuna.Study, trial_number: int) -> int:
    """1-based place of a just-asked trial among the budget trials: above ``n_trials`` it must not run."""
    numbers = [t.number for t in budget_trials(study.get_trials(deepcopy=False))]
    return numbers.index(trial_number) + 1


def write_results(study: optuna.Study, path: Path) -> dict[str, Any]:
    """``optimization_results.json``: the best trial (its job dir is the trial number) and trial counts."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    results: dict[str, Any] = {"study_name": study.study_name, "direction": study.direction.name.lower()}
    results["trials"] = {k: v for k, v in counts.items() if v}
    workers = sorted({str(t.user_attrs[WORKER]) for t in trials if WORKER in t.user_attrs})
    if len(workers) > 1:
        results["workers"] = {w: sum(t.user_attrs.get(WORKER) == w for t in trials) for w in workers}
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        results["best"] = {"trial": best.number, "job_dir": str(best.number), "value": best.value}
        results["best"]["params"] = best.params
    path.write_text(json.dumps(results, indent=2, default=str))
    return results
