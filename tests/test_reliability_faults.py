"""Faults: a NaN/inf loss (stop naming the step, or skip by config), an uncreatable output folder (one line
from the real CLI), an incomplete last.ckpt, and `kill -9` mid-epoch followed by `ckpt_path=last`."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from deepfake_lightning.bundle import (
    CheckpointError,
    find_last_checkpoint,
    open_model,
    read_checkpoint,
)
from deepfake_lightning.modules.detector_module import NonFiniteLossError
from deepfake_lightning.modules.losses import BinaryLoss
from deepfake_lightning.train import train
from tests.conftest import REPO_ROOT, make_folder_tree


def _poison_training_loss(monkeypatch: pytest.MonkeyPatch, value: float, at_calls: set[int] | None) -> None:
    """Training losses number `at_calls` (None: all) become `value`; validation (no grad) is left alone."""
    original = BinaryLoss.forward
    calls = {"train": 0}

    def forward(self: BinaryLoss, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = original(self, logits, targets)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if at_calls is None or calls["train"] in at_calls:
                return loss * value if math.isnan(value) else loss + value
        return loss

    monkeypatch.setattr(BinaryLoss, "forward", forward)


def _cfg(compose_cfg, tmp_path: Path, overrides: list[str]):  # noqa: ANN001, ANN202
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", "test=false", *overrides])
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 3
        cfg.calibration.enabled = False
    return cfg, root


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_naming_step_and_files(
    compose_cfg, tmp_path: Path, monkeypatch, value: float
) -> None:  # noqa: ANN001
    _poison_training_loss(monkeypatch, value, {2})
    cfg, root = _cfg(compose_cfg, tmp_path, [])
    assert cfg.model.nonfinite_loss == "stop"  # the default
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg)
    message = str(info.value)
    assert f"training loss is {value} at global step 1 (epoch 0); batch of 4 image(s)" in message
    assert message.count(str(root)) == 4 and "model.nonfinite_loss=skip" in message


def test_nonfinite_loss_skip_drops_each_batch_and_counts_it(
    compose_cfg, tmp_path: Path, monkeypatch, caplog
) -> None:  # noqa: ANN001
    """Every training loss is NaN: the run still ends, each batch is counted, and no weight moved."""
    import lightning as L
    from hydra.utils import instantiate

    _poison_training_loss(monkeypatch, float("nan"), None)
    cfg, _ = _cfg(compose_cfg, tmp_path, ["model.nonfinite_loss=skip"])
    with caplog.at_level(logging.WARNING):
        assert train(cfg)["status"] == "ok"
    for step in range(3):
        assert (
            f"skipped the batch at global step {step} (epoch 0): training loss is nan ({step + 1} such"
            in caplog.text
        )
    assert "no train batch was scored in epoch 0: no train metrics for it" in caplog.text
    last = read_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 3  # Lightning still calls the optimizer, but with no gradient at all
    L.seed_everything(cfg.seed)
    initial = instantiate(cfg.model, _recursive_=False)
    for name, param in initial.named_parameters():
        assert torch.equal(last["state_dict"][name], param.detach()), name
    metrics = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("train/nonfinite_skipped")
    assert [line.split(",")[column] for line in metrics[1:] if line.split(",")[column]] == [
        "1.0",
        "2.0",
        "3.0",
    ]


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepfake_lightning.train", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_uncreatable_output_folders_stop_the_cli_at_once_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = {
        f"paths.output_dir={blocker}/run": f"Invalid config: paths.output_dir='{blocker}/run': cannot create it (Not a directory)",
        f"paths.log_dir={blocker}/logs": f"Invalid config: hydra.run.dir='{blocker}/logs/train/runs/",
    }
    for override, expected in cases.items():
        result = _cli(
            [override, f"paths.log_dir={tmp_path / 'logs'}"] if "output_dir" in override else [override]
        )
        assert result.returncode == 1, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith(expected), result.stderr[-2000:]
        assert "Traceback" not in result.stderr and not list(tmp_path.rglob("model_info.json"))


def test_incomplete_last_checkpoint_is_passed_over(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    older = tmp_path / "train" / "runs" / "a" / "checkpoints" / "last.ckpt"
    newer = tmp_path / "train" / "runs" / "b" / "checkpoints" / "last.ckpt"
    for path in (older, newer):
        path.parent.mkdir(parents=True)
    torch.save({"epoch": 0}, older)
    newer.write_bytes(older.read_bytes()[:-40])  # killed while writing: the zip directory is missing
    os.utime(older, (time.time() - 60, time.time() - 60))
    with caplog.at_level(logging.WARNING):
        assert find_last_checkpoint(tmp_path) == older
    assert f"passing over {newer}: incomplete" in caplog.text
    older.write_bytes(b"")
    with pytest.raises(CheckpointError, match="every checkpoints/last.ckpt under .* is unreadable"):
        find_last_checkpoint(tmp_path)


def test_last_checkpoint_is_the_latest_epoch_even_when_it_is_not_the_best(
    compose_cfg, tmp_path: Path
) -> None:
    """Lightning 2.6 only rewrites save_last's file in an improving epoch; ours is written every epoch.
    Monitoring `step` with mode=min makes epoch 0 the best forever."""
    cfg, _ = _cfg(
        compose_cfg,
        tmp_path,
        [
            "callbacks.model_checkpoint.monitor=step",
            "callbacks.model_checkpoint.mode=min",
            "trainer.max_epochs=2",
            "~callbacks.early_stopping",
        ],
    )
    cfg.trainer.limit_train_batches = 1
    train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    assert read_checkpoint(checkpoints / "best.ckpt")["epoch"] == 0
    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 1


def _train_command(root: Path, logs: Path, run: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deepfake_lightning.train",
        "data=folder",
        f"data.root={root}",
        "data.batch_size=4",
        "data.image_size=32",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=3",
        "trainer.log_every_n_steps=1",
        "~callbacks.early_stopping",  # every asked epoch runs: the count is part of the check
        "~callbacks.rich_progress_bar",
        "+trainer.enable_progress_bar=false",
        "calibration.enabled=false",
        f"paths.log_dir={logs}",
        f"hydra.run.dir={logs}/train/runs/{run}",
        *extra,
    ]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_from_last(tmp_path: Path) -> None:
    """A real training process is SIGKILLed in epoch 1 (last.ckpt of epoch 0 on disk); `ckpt_path=last`
    finishes the 3 asked epochs with a loadable best checkpoint and the full history, and ends exactly where an
    uninterrupted run with the same seed ends: same best score (what sweepers get), best.ckpt and test results."""
    root = make_folder_tree(tmp_path / "faces", per_class=20)  # 32 train images: 8 batches per epoch
    logs, ready = tmp_path / "logs", tmp_path / "killed_at"
    kill_point = [
        "+callbacks.kill_point._target_=tests.kill_point.KillPoint",
        f"+callbacks.kill_point.path={ready}",
    ]
    first = subprocess.Popen(
        _train_command(root, logs, "first", kill_point),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last_ckpt = logs / "train" / "runs" / "first" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 400
        while not ready.exists():
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "training never reached epoch 1, batch 3"
            time.sleep(0.2)
        assert ready.read_text().split()[:2] == ["1", "3"]
        assert read_checkpoint(last_ckpt)["epoch"] == 0  # epoch 0 saved, epoch 1 under way
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=60) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=60)
    first.stderr.close()
    assert not (logs / "train" / "runs" / "first" / "run_summary.json").exists()

    resumed = subprocess.run(
        _train_command(root, logs, "resumed", ["ckpt_path=last"]),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last_ckpt}" in resumed.stdout + resumed.stderr
    run = logs / "train" / "runs" / "resumed"
    history = json.loads((run / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 2
    summary = json.loads((run / "run_summary.json").read_text())
    assert summary["status"] == "ok" and Path(summary["best_checkpoint"]) == run / "checkpoints" / "best.ckpt"
    open_model(run / "checkpoints" / "best.ckpt")  # a valid, loadable best checkpoint
    assert json.loads((run / "test_results.json").read_text())["n"] == 4

    straight = subprocess.run(
        _train_command(root, tmp_path / "straight_logs", "straight", []),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    reference = tmp_path / "straight_logs" / "train" / "runs" / "straight"
    expected = json.loads((reference / "run_summary.json").read_text())
    assert summary["val/auroc"] == expected["val/auroc"]  # the value returned to the sweeper
    for key in ("auroc", "accuracy", "log_loss"):
        assert summary["test"][key]["value"] == expected["test"][key]["value"], key
    ours = read_checkpoint(run / "checkpoints" / "best.ckpt")
    theirs = read_checkpoint(reference / "checkpoints" / "best.ckpt")
    assert ours["epoch"] == theirs["epoch"]
    assert all(torch.equal(ours["state_dict"][k], theirs["state_dict"][k]) for k in theirs["state_dict"])
    reference_history = json.loads((reference / "training_history.json").read_text())
    assert [h["val/auroc"] for h in history] == [h["val/auroc"] for h in reference_history]
