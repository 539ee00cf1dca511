"""The ``hydra/sweeper: deepfake_optuna`` config node (registered in Hydra's ConfigStore on import).

No ``from __future__ import annotations`` here: Hydra imports plugin modules outside ``sys.modules``, where
dataclasses cannot resolve string annotations, and OmegaConf needs ``typing.Optional`` rather than ``X | None``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035

from hydra.core.config_store import ConfigStore


def _tpe() -> Dict[str, Any]:  # noqa: UP006
    return {"_target_": "optuna.samplers.TPESampler", "seed": 42, "n_startup_trials": 10}


@dataclass
class DeepfakeOptunaSweeperConf:
    _target_: str = "hydra_plugins.deepfake_optuna_sweeper.sweeper.DeepfakeOptunaSweeper"
    _recursive_: bool = False  # the sweeper builds the sampler itself, re-seeded when a study resumes
    study_name: str = "study"
    # null: a JournalStorage file `optuna_journal.log` in the sweep dir (one sweeper process); or an Optuna storage
    # URL that several sweeper processes share (postgresql://user@host:5432/db, sqlite:///path.db), or a path for
    # the journal file. The password: PGPASSWORD or ~/.pgpass, or in the URL (then kept out of every file and log)
    storage: Optional[str] = None  # noqa: UP045
    # database storages only: a trial whose sweeper stops sending heartbeats (every heartbeat_interval seconds)
    # for grace_period seconds (null: 2 intervals) is failed and queued again, at most max_retry times
    heartbeat_interval: Optional[int] = 60  # noqa: UP045
    grace_period: Optional[int] = None  # noqa: UP045
    max_retry: Optional[int] = 1  # noqa: UP045
    direction: str = "maximize"
    # trials in total, over all sessions of this study: a resumed search runs only the remainder
    n_trials: int = 20
    # trials asked and launched together (in parallel with a parallel launcher such as submitit)
    n_jobs: int = 1
    sampler: Any = field(default_factory=_tpe)
    # null, or e.g. {_target_: optuna.pruners.MedianPruner, n_startup_trials: 5, n_warmup_steps: 2}: trials then
    # report the validation metric each epoch and stop early when pruned (callbacks.optuna_pruning)
    pruner: Any = None
    # search space, Hydra sweep syntax: choice(a, b), range(0, 10, 2), interval(0.1, 1), tag(log, interval(..))
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="deepfake_optuna",
    node=DeepfakeOptunaSweeperConf,
    provider="deepfake_optuna_sweeper",
)
