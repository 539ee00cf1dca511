"""One Optuna study in a real PostgreSQL server, shared by sweeper processes (`pytest -m cluster`).

The server is started by `tests.cluster_engines.postgres` (initdb + pg_ctl in a temp dir, 127.0.0.1 on a free
port, a login role with a password); each test gets its own database. Every sweep is the real command,
`python -m deepfake_lightning.train hparams_search=advanced_v2_optuna hydra.sweeper.storage=postgresql://...`,
on 8+8 synthetic images at 40 px.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hydra_plugins.deepfake_optuna_sweeper.storage import open_storage
from hydra_plugins.deepfake_optuna_sweeper.study import WORKER, budget_trials
from tests.cluster_engines import Postgres, free_port, require
from tests.conftest import REPO_ROOT
from tests.sweep_helpers import run_train, tiny_synthetic

pytest_plugins = ("tests.cluster_engines",)
pytestmark = pytest.mark.cluster
PRUNE_EVERY_EPOCH = (
    "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:1,n_warmup_steps:0}"
)


def _search(tmp_path: Path, name: str, url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deepfake_lightning.train",
        "hparams_search=advanced_v2_optuna",
        # workers given one name share the data dir (and its generation lock)
        *tiny_synthetic(tmp_path / name),
        "test=false",
        "calibration.enabled=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"hydra.sweeper.storage={url}",
        *extra,
    ]


def _start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    environment = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches the whole sweeper
    )


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"sweeper still running after {timeout} s:\n{out[-3000:]}")
    return out


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_two_sweepers_share_one_study(postgres: Postgres, tmp_path: Path) -> None:
    """Two sweeper processes started at the same moment run n_trials=4 in total, none twice; the pruner of
    each trial compares it with the other worker's trials; the password is in no file and no output."""
    database = postgres.create_database("two_workers")
    n_trials = ["hydra.sweeper.n_trials=4", PRUNE_EVERY_EPOCH]
    # worker A gives the password in the URL (the sweeper takes it out), worker B through libpq's PGPASSWORD
    # one data dir, as the same command in two shells: one worker generates the synthetic set, the other waits
    worker_a = _start(_search(tmp_path, "shared", postgres.url(postgres.password, database), *n_trials))
    worker_b = _start(
        _search(tmp_path, "shared", postgres.url(database=database), *n_trials),
        {"PGPASSWORD": postgres.password},
    )
    out_a, out_b = _finish(worker_a), _finish(worker_b)
    assert worker_a.returncode == 0, out_a[-4000:]
    assert worker_b.returncode == 0, out_b[-4000:]

    storage = open_storage(postgres.url(postgres.password, database))
    study = optuna.load_study(study_name="advanced_v2", storage=storage)
    budget = budget_trials(study.trials)
    assert len(budget) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in budget)
    assert all(
        t.state == TrialState.FAIL and t.user_attrs.get("not_run") for t in study.trials if t not in budget
    )
    assert len({json.dumps(t.params, sort_keys=True) for t in budget}) == 4  # no parameter set twice
    sweep = tmp_path / "sweep"
    for trial in budget:  # each trial ran once, in the job dir named by its number
        summary = json.loads((sweep / str(trial.number) / "run_summary.json").read_text())
        assert summary["val/auroc"] == pytest.approx(trial.value)
    workers = {t.user_attrs[WORKER] for t in budget}
    assert len(workers) == 2, workers  # both processes ran trials
    by_number = {t.number: t.user_attrs[WORKER] for t in budget}
    # the pruner's view: at each report, the trials (of both workers) that had reported that epoch
    crossed = [
        t.number
        for t in budget
        if any(
            by_number.get(p, "") not in ("", t.user_attrs[WORKER]) for p in t.user_attrs["pruning_peers"]["0"]
        )
    ]
    assert crossed, {t.number: t.user_attrs["pruning_peers"] for t in budget}
    results = json.loads((sweep / "optimization_results.json").read_text())
    assert sum(results["workers"].values()) == len(study.trials)

    assert postgres.password not in out_a + out_b
    assert not _files_holding(tmp_path, postgres.password)
    multirun = (sweep / "multirun.yaml").read_text()
    assert f"storage: {postgres.url(database=database)}" in multirun  # the URL, without the password


def test_killed_sweeper_leaves_its_trial_failed_and_retried(postgres: Postgres, tmp_path: Path) -> None:
    """A sweeper killed mid-trial: its trial stops getting heartbeats; running the same command again fails it
    after the grace period, runs its retry (same parameters) and completes the study."""
    database = postgres.create_database("killed_worker")
    ready = tmp_path / "killed_at"
    command = _search(
        tmp_path,
        "data",
        postgres.url(postgres.password, database),
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=4",
        "+callbacks.kill_point._target_=tests.kill_point.KillPoint",  # once: the re-run passes it by
        f"+callbacks.kill_point.path={ready}",
        "+callbacks.kill_point.epoch=0",
        "+callbacks.kill_point.batch=1",
    )
    first = _start(command)
    deadline = time.monotonic() + 600
    while not ready.exists():
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "the first trial never reached its kill point"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    study = optuna.load_study(
        study_name="advanced_v2", storage=open_storage(postgres.url(postgres.password, database))
    )
    assert [t.state for t in study.trials] == [TrialState.RUNNING]

    again = run_train(*command[3:])  # the same command
    assert again.returncode == 0, again.stdout[-4000:]
    study = optuna.load_study(
        study_name="advanced_v2", storage=open_storage(postgres.url(postgres.password, database))
    )
    killed = study.trials[0]
    assert killed.state == TrialState.FAIL  # not RUNNING forever
    [retry] = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    budget = budget_trials(study.trials)
    assert len(budget) == 2 and all(t.state == TrialState.COMPLETE for t in budget)
    assert killed not in budget


@pytest.mark.parametrize("fault", ["bad password", "unreachable"])
def test_database_errors_are_one_line_without_the_password(
    postgres: Postgres, tmp_path: Path, fault: str
) -> None:
    wrong = "not-the-" + postgres.password
    if fault == "bad password":
        url, expected = postgres.url(wrong), f'password authentication failed for user "{postgres.user}"'
    else:
        closed = Postgres(
            postgres.host, 1, postgres.user, "", postgres.database, ""
        )  # nothing listens on port 1
        url, expected = closed.url(wrong), "Connection refused"
    proc = run_train(*_search(tmp_path, "data", url)[3:], timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout and wrong not in proc.stdout
    masked = url.replace(wrong, "***")
    [line] = [line for line in proc.stdout.splitlines() if masked in line]
    assert line.startswith(f"Optuna storage {masked}: cannot connect: ") and expected in line, proc.stdout[
        -2000:
    ]
    assert not list((tmp_path / "sweep").glob("[0-9]*"))  # no trial ran


def test_optuna_dashboard_shows_the_shared_study(postgres: Postgres, tmp_path: Path) -> None:
    """`optuna-dashboard postgresql://...` (password from PGPASSWORD) in a real headless Chromium lists the study
    and shows its trials."""
    from playwright.sync_api import sync_playwright

    from tests.test_web_page import CHROMIUM, CHROMIUM_ARGS

    require("Chromium", [] if Path(CHROMIUM).is_file() else ["chromium"])
    database = postgres.create_database("dashboard")
    study = optuna.create_study(
        study_name="dashboard_study",
        storage=open_storage(postgres.url(postgres.password, database)),
        direction="maximize",
    )
    for x in (0.2, 0.5, 0.9):
        trial = study.ask(
            {"model.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
        )
        trial.report(x / 2, 0)
        study.tell(trial, x)
    port = free_port()
    dashboard = _start(
        [
            str(Path(sys.executable).parent / "optuna-dashboard"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            postgres.url(database=database),
        ],
        {"PGPASSWORD": postgres.password},
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            deadline = time.monotonic() + 120
            while True:  # the server takes a few seconds to listen
                try:
                    page.goto(f"http://127.0.0.1:{port}/dashboard", timeout=10_000)
                    break
                except Exception:
                    assert dashboard.poll() is None, dashboard.stdout.read()[-3000:]
                    assert time.monotonic() < deadline, "optuna-dashboard never answered"
                    time.sleep(1)
            page.get_by_text("dashboard_study").first.wait_for(timeout=60_000)
            page.get_by_text("dashboard_study").first.click()
            page.get_by_text("Best Trial (number=2)").first.wait_for(timeout=60_000)  # trial 2 scored 0.9
            page.get_by_text("0.9", exact=True).first.wait_for(timeout=30_000)  # its value
            page.get_by_text("trial #1").first.wait_for(timeout=30_000)  # the intermediate values, per trial
            page.screenshot(path=str(tmp_path / "dashboard.png"))
            browser.close()
    finally:
        os.killpg(dashboard.pid, signal.SIGKILL)
        dashboard.communicate()
