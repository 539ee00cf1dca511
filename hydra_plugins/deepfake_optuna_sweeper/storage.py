"""Where a study lives: a journal file in the sweep dir (one sweeper process), or a database URL that several
sweeper processes share (``postgresql://user@host:port/db``).

The database password never reaches a file or a log line. Give it through libpq's own ``PGPASSWORD`` or
``~/.pgpass`` (nothing in the URL), or in the URL: the sweeper then takes it out (``hide_password``), keeps it
in the environment variable ``DFL_OPTUNA_STORAGE_PASSWORD`` for this process and the jobs it starts, and
writes and logs the URL without it. ``open_storage`` puts it back when it connects.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

JOURNAL_FILE = "optuna_journal.log"
PASSWORD_ENV = "DFL_OPTUNA_STORAGE_PASSWORD"


class StorageError(SystemExit):
    """One line naming the storage (never its password); a SystemExit so Hydra prints no traceback."""


def is_url(storage: str | None) -> bool:
    return bool(storage) and "://" in str(storage)


def storage_location(storage: str | None, sweep_dir: Path) -> str:
    """null -> the journal file in the sweep dir; a URL (``sqlite:///x.db``) or a journal path as given."""
    if is_url(storage):
        return str(storage)
    return str(Path(storage).resolve() if storage else (sweep_dir / JOURNAL_FILE).resolve())


def safe_url(url: str) -> str:
    """The URL as it may be shown: the password, if any, as ``***``."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL SQLAlchemy can parse: show only its scheme
        return url.split("://", 1)[0] + "://..."


def hide_password(url: str) -> str:
    """The URL without its password; a password found there moves to ``$DFL_OPTUNA_STORAGE_PASSWORD`` (this
    process and its children: local jobs, and SLURM jobs, which inherit the submitting environment)."""
    if not is_url(url):
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password is None:
        return url
    os.environ[PASSWORD_ENV] = str(parsed.password)
    return parsed._replace(password=None).render_as_string(hide_password=False)


def _with_password(url: str) -> str:
    """The password from ``$DFL_OPTUNA_STORAGE_PASSWORD`` put back when the URL names a user but no password
    (without either, libpq's PGPASSWORD and ~/.pgpass apply)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    password = os.environ.get(PASSWORD_ENV)
    if password and parsed.username is not None and parsed.password is None:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


def _psycopg3(url: str) -> str:
    """``postgresql://`` through psycopg 3 (the ``optuna-pg`` extra), whatever SQLAlchemy's default driver."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _create_rdb(url: str, heartbeat: dict[str, Any], attempts: int = 5) -> RDBStorage:
    """RDBStorage creates Optuna's tables on first use; two workers starting together on an empty database race
    there ("relation ... already exists"): the loser retries and finds them made. Connection and login errors
    (OperationalError) are not retried."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            # pool_pre_ping: a connection the server closed while a long trial ran is replaced, not an error
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **heartbeat)
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def open_database(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = None,
) -> RDBStorage:
    """An Optuna RDBStorage, or one line saying why not (driver missing, server unreachable, login refused).

    With ``heartbeat_interval``, a trial whose sweeper stops sending heartbeats for ``grace_period`` seconds is
    failed by the next ``fail_stale_trials`` of any worker and queued again (``RetryFailedTrialCallback``,
    at most ``max_retry`` times), instead of staying RUNNING forever.
    """
    from sqlalchemy.exc import SQLAlchemyError

    full = _with_password(url)
    shown = safe_url(full)  # the password (from the URL or the environment) as ***

    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            heartbeat = {}
            if heartbeat_interval:
                heartbeat = {
                    "heartbeat_interval": int(heartbeat_interval),
                    "grace_period": int(grace_period) if grace_period else None,
                    "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                }
            return _create_rdb(_psycopg3(full), heartbeat)
    except ImportError as error:  # Optuna re-raises the driver's ModuleNotFoundError as an ImportError
        missing = getattr(error.__cause__, "name", None) or "the driver"
        raise StorageError(
            f"Optuna storage {shown}: its database driver is not installed ({missing}); for "
            'PostgreSQL: pip install "deepfake_lightning[optuna-pg]" (psycopg 3)'
        ) from None
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        first_line = next(
            (line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__
        )
        password = os.environ.get(PASSWORD_ENV)
        if password:  # drivers do not echo it, but a message with a secret is never shown
            first_line = first_line.replace(password, "***")
        raise StorageError(f"Optuna storage {shown}: cannot connect: {first_line}") from None


def open_storage(storage: str | None, sweep_dir: Path | None = None, **heartbeat: int | None) -> BaseStorage:
    """A URL opens a database (``open_database``); anything else is a JournalStorage file (null: in
    ``sweep_dir``)."""
    if is_url(storage):
        return open_database(str(storage), **heartbeat)
    if not storage and sweep_dir is None:
        raise ValueError("open_storage: a storage path or URL, or the sweep dir, is needed")
    path = Path(storage_location(storage, sweep_dir or Path(".")))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))
