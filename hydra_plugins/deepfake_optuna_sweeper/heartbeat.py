"""Heartbeats for the trials this sweeper process has in flight.

Optuna sends heartbeats itself only inside ``study.optimize``; this sweeper asks and tells, and its trials run in
the launcher's jobs (this process, or SLURM jobs) while it waits. So it records them here, from a daemon thread,
every ``interval`` seconds, with the storage's own ``record_heartbeat``. When this process dies the heartbeats
stop, and after the storage's grace period any worker's ``fail_stale_trials`` fails the trial and queues it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

log = logging.getLogger(__name__)


@contextmanager
def heartbeats(storage: BaseStorage, trial_ids: list[int]) -> Iterator[None]:
    """Record a heartbeat for each trial now and every interval until the block ends (no-op without one)."""
    if not (isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)):
        yield
        return
    interval = float(storage.get_heartbeat_interval() or 60)
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial_id in trial_ids:
                try:
                    storage.record_heartbeat(trial_id)
                except (
                    Exception
                ) as error:  # a database hiccup: the next beat retries, the grace period covers it
                    log.warning("heartbeat of trial id %d not recorded: %s", trial_id, error)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    for trial_id in trial_ids:  # before the block: a trial is never RUNNING without a heartbeat
        storage.record_heartbeat(trial_id)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)
