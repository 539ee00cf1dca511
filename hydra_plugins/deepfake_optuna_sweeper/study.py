"""Opening, resuming and summarising the Optuna study that lives in the sweep dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

log = logging.getLogger(__name__)
JOURNAL_FILE = "optuna_journal.log"
INTERRUPTED = "interrupted"  # user attr of a trial that was RUNNING when a previous session stopped
PRUNED_ATTR = "pruned_at_epoch"  # user attr set by deepfake_lightning.callbacks.optuna_pruning


def storage_location(storage: str | None, sweep_dir: Path) -> str:
    """null -> the journal file in the sweep dir; a URL (``sqlite:///x.db``) or a journal path as given."""
    if storage and "://" in storage:
        return storage
    return str(Path(storage).resolve() if storage else (sweep_dir / JOURNAL_FILE).resolve())


def open_storage(storage: str | None, sweep_dir: Path | None = None) -> BaseStorage | str:
    """A URL is passed to Optuna as is; anything else is a JournalStorage file (null: in ``sweep_dir``)."""
    if storage and "://" in storage:
        return storage
    if not storage and sweep_dir is None:
        raise ValueError("open_storage: a storage path or URL, or the sweep dir, is needed")
    path = Path(storage_location(storage, sweep_dir or Path(".")))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def existing_trials(storage: BaseStorage | str, study_name: str) -> int:
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:
        return 0


def recover_interrupted(study: optuna.Study) -> int:
    """Trials left RUNNING by a stopped session are failed, flagged, and their parameters queued again.

    Assumes one sweeper process per study, which is how this sweeper runs it.
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


def finished_trials(study: optuna.Study) -> int:
    """Completed, pruned and failed trials count towards ``n_trials``; interrupted ones do not."""
    done = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
        elif trial.state == TrialState.FAIL and not trial.user_attrs.get(INTERRUPTED):
            done += 1
    return done


def write_results(study: optuna.Study, path: Path) -> dict[str, Any]:
    """``optimization_results.json``: the best trial (its job dir is the trial number) and trial counts."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    results: dict[str, Any] = {"study_name": study.study_name, "direction": study.direction.name.lower()}
    results["trials"] = {k: v for k, v in counts.items() if v}
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        results["best"] = {"trial": best.number, "job_dir": str(best.number), "value": best.value}
        results["best"]["params"] = best.params
    path.write_text(json.dumps(results, indent=2, default=str))
    return results
