"""Stops an Optuna trial early when its validation curve is worse than the pruner allows.

Added to a trial's callbacks by our Optuna sweeper when ``hydra.sweeper.pruner`` is set. It talks to the study
through its storage (the journal file in the sweep dir), so it works in the job's own process whatever the
launcher; with a database storage the pruner compares the trial with those of every sweeper process sharing
the study (the trial's user attr ``pruning_peers`` lists them per epoch). A pruned trial stops training (``trainer.should_stop``) instead of raising, so the job still ends
normally; the flag ``pruned_at_epoch`` tells the sweeper to record the trial as PRUNED.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import optuna

from hydra_plugins.deepfake_optuna_sweeper.storage import open_storage
from hydra_plugins.deepfake_optuna_sweeper.study import PRUNED_ATTR

PEERS_ATTR = "pruning_peers"  # {epoch: numbers of the other trials that had reported it when this one did}


class OptunaPruningCallback(L.Callback):
    def __init__(
        self, storage: str, study_name: str, trial_number: int, monitor: str, pruner: Any = None
    ) -> None:
        self.monitor = monitor
        self.study = optuna.load_study(study_name=study_name, storage=open_storage(storage), pruner=pruner)
        trial = self.study.trials[trial_number]
        self.trial = optuna.trial.Trial(self.study, trial._trial_id)
        self.peers: dict[str, list[int]] = {}

    def report(self, value: float, epoch: int) -> bool:
        """Reports one epoch's value; True when the pruner says stop (and the trial is flagged)."""
        self.trial.report(value, step=epoch)
        self.peers[str(epoch)] = [
            t.number
            for t in self.study.get_trials(deepcopy=False)
            if t.number != self.trial.number and epoch in t.intermediate_values
        ]
        self.trial.set_user_attr(PEERS_ATTR, self.peers)
        if self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_ATTR, epoch)
            return True
        return False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        prune = bool(
            trainer.is_global_zero and value is not None and self.report(float(value), trainer.current_epoch)
        )
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
