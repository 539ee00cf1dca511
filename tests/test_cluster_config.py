"""The cheap half of the cluster features, in the default suite: what a SLURM job asks for, a requeued job's
checkpoint, the storage URL's password, the n_trials budget. The engines themselves: `pytest -m cluster`."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from deepfake_lightning.distributed.requeue import requeued_checkpoint
from hydra_plugins.deepfake_optuna_sweeper.storage import PASSWORD_ENV, hide_password, open_storage, safe_url
from hydra_plugins.deepfake_optuna_sweeper.study import NOT_RUN, budget_trials, finished_trials
from tests.conftest import CONF_DIR


@pytest.mark.parametrize(
    ("overrides", "gpus", "tasks", "cpus"),
    [
        (["+experiment=fast", "debug=fdr"], None, 1, 1),  # accelerator auto: no GPU asked for, workers 0 + 1
        (["trainer=gpu"], 1, 1, 3),
        (["trainer=ddp", "trainer.devices=4"], 4, 4, 3),
        (["trainer=ddp_cpu", "data.num_workers=5"], None, 2, 6),
    ],
)
def test_slurm_job_asks_for_what_the_run_needs(
    overrides: list[str], gpus: int | None, tasks: int, cpus: int
) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.cpus_per_task) == (gpus, tasks, cpus)
    assert launcher.nodes == 1 and launcher.mem_gb is None and launcher.partition is None


def test_requeued_job_resumes_only_its_own_complete_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requeued_checkpoint(tmp_path) is None  # not a restarted job
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_checkpoint(tmp_path) is None  # restarted before its first checkpoint
    last.parent.mkdir()
    last.write_bytes(b"PK\x03\x04 cut short")  # killed while saving: no zip directory
    assert requeued_checkpoint(tmp_path) is None
    import torch

    torch.save({"epoch": 0}, last)
    assert requeued_checkpoint(tmp_path) == last


def test_password_leaves_the_url_and_comes_back_only_to_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    url = "postgresql://optuna:s3cr%40t@db.example.org:5432/study"
    assert safe_url(url) == "postgresql://optuna:***@db.example.org:5432/study"
    bare = hide_password(url)
    assert bare == "postgresql://optuna@db.example.org:5432/study" and os.environ[PASSWORD_ENV] == "s3cr@t"
    assert hide_password(bare) == bare  # no password: unchanged
    assert safe_url("not a url://x") == "not a url://..."  # unparseable: only its scheme is shown


def test_an_unreachable_database_is_one_line_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv(PASSWORD_ENV, "hunter2")
    with pytest.raises(SystemExit) as stop:
        open_storage("postgresql://optuna@127.0.0.1:1/study")  # nothing listens on port 1
    message = str(stop.value)
    assert message.startswith("Optuna storage postgresql://optuna:***@127.0.0.1:1/study: cannot connect: ")
    assert "hunter2" not in message and "\n" not in message


def test_budget_counts_places_not_failed_retries_or_surplus(tmp_path: Path) -> None:
    study = optuna.create_study(storage=open_storage(None, tmp_path), direction="maximize")
    dist = {"x": FloatDistribution(0.0, 1.0)}
    done = study.ask(dist)
    study.tell(done, 0.5)
    running = study.ask(dist)  # another worker's trial, alive
    surplus = study.ask(dist)
    surplus.set_user_attr(NOT_RUN, "the study had 2 trials")
    study.tell(surplus, state=TrialState.FAIL)
    failed = study.ask(dist)
    study.tell(failed, state=TrialState.FAIL)  # a crash: it counts
    assert [t.number for t in budget_trials(study.trials)] == [done.number, running.number, failed.number]
    assert finished_trials(study) == 2
