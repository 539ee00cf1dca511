"""The lightning-hydra-template conveniences: debug presets, plain trainer.* overrides, the config tree."""

from __future__ import annotations

import pytest
from lightning.pytorch.utilities import rank_zero_only

from deepfake_lightning.utils.config_validation import validate_config
from deepfake_lightning.utils.task import run_task

PRESETS = {
    "default": {"max_epochs": 1, "fast_dev_run": False},
    "fdr": {"fast_dev_run": True},
    "limit": {"max_epochs": 3, "limit_train_batches": 5, "limit_val_batches": 2, "limit_test_batches": 2},
    "overfit": {"overfit_batches": 3, "max_epochs": 20},
    "profiler": {"profiler": "simple", "max_epochs": 1},
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_debug_preset_composes_and_validates(compose_cfg, preset: str) -> None:
    cfg = compose_cfg("train", [f"debug={preset}"], tiny=False)
    for key, value in PRESETS[preset].items():
        assert cfg.trainer[key] == value, key
    # the base of every preset: one process, anomaly detection, runs apart under logs/debug
    assert cfg.task_name == "debug" and cfg.trainer.devices == 1 and cfg.trainer.detect_anomaly
    assert cfg.data.num_workers == 0
    validate_config(cfg)


def test_debug_overfit_drops_early_stopping(compose_cfg) -> None:
    assert compose_cfg("train", ["debug=overfit"], tiny=False).callbacks.early_stopping is None
    assert compose_cfg("train", [], tiny=False).callbacks.early_stopping is not None


def test_no_debug_preset_by_default(compose_cfg) -> None:
    cfg = compose_cfg("train", [], tiny=False)
    assert cfg.task_name == "train" and not cfg.trainer.fast_dev_run and "detect_anomaly" not in cfg.trainer


def test_eval_takes_the_debug_presets(compose_cfg) -> None:
    cfg = compose_cfg("eval", ["debug=fdr", "ckpt_path=x.ckpt"], tiny=False)
    assert cfg.trainer.fast_dev_run is True and cfg.task_name == "debug"


@pytest.mark.parametrize(
    "override",
    [
        "trainer.fast_dev_run=true",
        "trainer.fast_dev_run=3",
        "trainer.limit_train_batches=0.1",
        "trainer.limit_val_batches=4",
        "trainer.limit_test_batches=2",
        "trainer.limit_predict_batches=2",
        "trainer.accumulate_grad_batches=4",
        "trainer.deterministic=true",
        "trainer.log_every_n_steps=5",
        "trainer.val_check_interval=0.5",
        "trainer.num_sanity_val_steps=0",
        "trainer.overfit_batches=2",
        "trainer.profiler=simple",
        "trainer.max_time=00:00:10:00",
    ],
)
def test_trainer_arguments_take_plain_overrides(compose_cfg, override: str) -> None:
    """Each of these used to need `+trainer.` (else `Key ... is not in struct`)."""
    key, value = override.split("=", 1)
    cfg = compose_cfg("train", ["+experiment=advanced_v2", override], tiny=False)
    assert str(cfg.trainer[key.split(".", 1)[1]]).lower() == value.lower()


def test_the_issue_command_composes(compose_cfg) -> None:
    """`python -m deepfake_lightning.train +experiment=advanced_v2 trainer.fast_dev_run=true` (issue 14)."""
    cfg = compose_cfg("train", ["+experiment=advanced_v2", "trainer.fast_dev_run=true"], tiny=False)
    assert cfg.trainer.fast_dev_run is True


def _noop(cfg) -> dict:
    return {"status": "ok"}


def test_config_tree_is_printed_at_start(compose_cfg, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = compose_cfg("train", ["trainer.max_epochs=7"], tiny=False)
    assert run_task(_noop, cfg) == {"status": "ok"}
    out = capsys.readouterr().out
    assert out.lstrip().startswith("CONFIG")
    for branch in ("data", "model", "trainer", "callbacks", "paths", "extras", "seed"):
        assert f"── {branch}" in out, branch
    assert "max_epochs: 7" in out  # resolved values, as the run uses them
    assert out.index("── data") < out.index("── model") < out.index("── trainer")


def test_config_tree_flag_turns_it_off(compose_cfg, capsys: pytest.CaptureFixture[str]) -> None:
    run_task(_noop, compose_cfg("train", ["extras.print_config=false"], tiny=False))
    assert "CONFIG" not in capsys.readouterr().out


def test_config_tree_only_on_rank_zero(
    compose_cfg, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    run_task(_noop, compose_cfg("train", [], tiny=False))
    assert "CONFIG" not in capsys.readouterr().out


def test_config_tree_survives_a_missing_value(compose_cfg, capsys: pytest.CaptureFixture[str]) -> None:
    """eval's `ckpt_path: ???` is reported by validation, not by a crash while printing."""
    run_task(_noop, compose_cfg("eval", [], tiny=False))
    out = capsys.readouterr().out
    assert "── ckpt_path" in out and "???" in out
