"""Our Hydra Optuna sweeper: search-space parsing, interrupted trials, and resume as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.deepfake_optuna_sweeper.search_space import format_value, parse_search_space
from hydra_plugins.deepfake_optuna_sweeper.storage import open_storage
from hydra_plugins.deepfake_optuna_sweeper.study import INTERRUPTED, finished_trials, recover_interrupted
from tests.sweep_helpers import run_train, tiny_synthetic


def test_search_space_from_config_and_command_line() -> None:
    params = {
        "model.optimizer.lr": "tag(log, interval(1e-4, 3e-3))",
        "model.head.dropout": "choice([0.5,0.35,0.25], [0.0,0.0,0.0])",
        "model.backbone.freeze_first_n": "choice(0, 25, 153)",
        "data.batch_size": "range(8, 33, 8)",
        "model.loss.gamma": "interval(0.0, 3.0)",
        "seed": "7",
    }
    space = parse_search_space(
        params, ["+experiment=fast", "model.loss.gamma=2.0", "model.attention.enabled=true,false"]
    )
    dists = space.distributions
    assert dists["model.optimizer.lr"] == FloatDistribution(1e-4, 3e-3, log=True)
    assert dists["model.head.dropout"] == CategoricalDistribution(["[0.5,0.35,0.25]", "[0.0,0.0,0.0]"])
    assert dists["model.backbone.freeze_first_n"] == CategoricalDistribution([0, 25, 153])
    assert dists["data.batch_size"] == IntDistribution(8, 32, step=8)
    assert dists["model.attention.enabled"] == CategoricalDistribution([True, False])
    assert "model.loss.gamma" not in dists  # fixed on the command line
    assert space.fixed == ["seed=7", "+experiment=fast", "model.loss.gamma=2.0"]
    trial = {
        "model.optimizer.lr": 0.001,
        "model.head.dropout": "[0.0,0.0,0.0]",
        "model.backbone.freeze_first_n": 25,
        "data.batch_size": 16,
        "model.attention.enabled": False,
    }
    assert space.overrides(trial)[3:] == [
        "model.optimizer.lr=0.001",
        "model.head.dropout=[0.0,0.0,0.0]",
        "model.backbone.freeze_first_n=25",
        "data.batch_size=16",
        "model.attention.enabled=false",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (3, "3"),
        (1e-05, "1e-05"),
        ("bce", "bce"),
        ("a b", "'a b'"),
        ("true", "'true'"),
        ([1, [2.5]], "[1,[2.5]]"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_interrupted_trial_is_failed_and_queued_again(tmp_path: Path) -> None:
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    dist = {"x": FloatDistribution(0.0, 1.0)}
    done = study.ask(dist)
    study.tell(done, 0.5)
    running = study.ask(dist)  # a session stopped while this trial ran
    resumed = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    assert recover_interrupted(resumed) == 1
    stale = resumed.trials[running.number]
    assert stale.state == TrialState.FAIL and stale.user_attrs[INTERRUPTED]
    assert finished_trials(resumed) == 1
    retry = resumed.ask(dist)
    assert retry.params == running.params and retry.number == 2


def test_optuna_search_resumes_to_n_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    common = [
        "hparams_search=advanced_v2_optuna",
        *tiny_synthetic(tmp_path),
        "test=false",
        "calibration.enabled=false",
        f"hydra.sweep.dir={sweep}",
    ]
    first = run_train(*common, "hydra.sweeper.n_trials=1")
    assert first.returncode == 0, first.stdout[-3000:]
    # the second session also prunes: its trial reports val/auroc per epoch through the pruning callback
    pruner = "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:1}"
    second = run_train(*common, "hydra.sweeper.n_trials=2", pruner)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "1 of 2 trials done, 1 to run" in second.stdout

    study = optuna.load_study(study_name="advanced_v2", storage=open_storage(None, sweep))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.trials[0].params != study.trials[1].params
    for trial in study.trials:  # the search config prunes by default, so every trial reports its epochs
        assert trial.intermediate_values == {0: pytest.approx(trial.value)}
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for trial in study.trials:
        summary = json.loads((sweep / str(trial.number) / "run_summary.json").read_text())
        assert summary["val/auroc"] == pytest.approx(trial.value)
    results = json.loads((sweep / "optimization_results.json").read_text())
    assert results["trials"] == {"complete": 2} and set(results["best"]["params"]) == set(study.best_params)
    jobs = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert [j["job"] for j in jobs] == [0, 1]


def test_hparams_search_composes_with_study_dir(compose_cfg) -> None:
    cfg = compose_cfg("train", ["hparams_search=advanced_v2_optuna"])
    hydra_cfg = HydraConfig.get()
    assert hydra_cfg.mode == RunMode.MULTIRUN
    assert hydra_cfg.sweeper._target_.endswith("DeepfakeOptunaSweeper")
    # a stable dir named by the study, so that re-running the command resumes it
    sweep_dir = OmegaConf.to_container(hydra_cfg.sweep, resolve=False)["dir"]
    assert sweep_dir.endswith("/optuna/${hydra.sweeper.study_name}")
    assert set(hydra_cfg.sweeper.params) >= {"model.optimizer.lr", "model.backbone.freeze_first_n"}
    assert cfg.optimized_metric == "val/auroc"


def test_pruning_callback_flags_a_trial_worse_than_the_median(tmp_path: Path) -> None:
    from deepfake_lightning.callbacks.optuna_pruning import OptunaPruningCallback
    from hydra_plugins.deepfake_optuna_sweeper.study import PRUNED_ATTR

    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(
        study_name="s", storage=open_storage(None, tmp_path), pruner=pruner, direction="maximize"
    )
    good = study.ask({"x": FloatDistribution(0.0, 1.0)})
    for epoch, value in enumerate([0.7, 0.8, 0.9]):
        good.report(value, epoch)
    study.tell(good, 0.9)
    running = study.ask({"x": FloatDistribution(0.0, 1.0)})  # the trial a job is training
    journal = str(tmp_path / "optuna_journal.log")
    callback = OptunaPruningCallback(journal, "s", running.number, "val/auroc", pruner=pruner)
    assert callback.report(0.75, 0) is False  # above the median of epoch 0 (0.7)
    assert callback.report(0.5, 1) is True  # below the median of epoch 1 (0.8)
    stored = optuna.load_study(study_name="s", storage=open_storage(journal)).trials[running.number]
    assert stored.user_attrs[PRUNED_ATTR] == 1 and stored.intermediate_values == {0: 0.75, 1: 0.5}
