"""`python -m deepfake_lightning.compare`: local run and sweep dirs (and the W&B path with a stand-in API)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from deepfake_lightning import compare


def _history(values: list[tuple[float, float]]) -> list[dict]:
    return [{"epoch": e, "val/auroc": a, "val/loss": loss} for e, (a, loss) in enumerate(values)]


def _job(sweep: Path, name: str, overrides: list[str], history: list[dict]) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "training_history.json").write_text(json.dumps(history))
    return job


@pytest.fixture
def sources(tmp_path: Path) -> list[str]:
    sweep = tmp_path / "sweep"
    _job(
        sweep,
        "0",
        ["+experiment=fast", "model.attention.enabled=true"],
        _history([(0.6, 0.7), (0.9, 0.4), (0.8, 0.5)]),
    )
    _job(
        sweep,
        "1",
        ["+experiment=fast", "model.attention.enabled=false"],
        _history([(0.7, 0.6), (0.75, 0.65)]),
    )
    (sweep / "2" / ".hydra").mkdir(parents=True)  # a failed job: no history, no curve
    run = tmp_path / "runs" / "solo"
    run.mkdir(parents=True)
    (run / "training_history.json").write_text(json.dumps(_history([(0.5, 0.9), (0.55, float("nan"))])))
    return [str(sweep), str(run)]


def test_compare_local_dirs_writes_png_and_best_epoch_table(sources: list[str], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    paths = compare.main([*sources, "metrics=[val/auroc,val/loss]", f"out={out}"])
    assert paths["png"].stat().st_size > 10_000
    table = paths["md"].read_text()
    assert "| sweep/0: model.attention.enabled=true | 3 | 0.9000 (1) | 0.4000 (1) |" in table
    assert "| sweep/1: model.attention.enabled=false | 2 | 0.7500 (1) | 0.6000 (0) |" in table
    assert "| runs/solo | 2 | 0.5500 (1) | 0.9000 (0) |" in table  # NaN loss skipped
    runs = json.loads(paths["json"].read_text())["runs"]
    assert len(runs) == 3 and runs[0]["val/auroc"] == {"best": 0.9, "epoch": 1}


def test_parse_args_accepts_lists_and_single_metrics() -> None:
    assert compare.parse_args(["a", "metrics=[val/auroc,train/loss]", "out=x"]) == (
        ["a"],
        {"metrics": ["val/auroc", "train/loss"], "out": "x"},
    )
    assert compare.parse_args(["a", "b", "metrics=val/eer"])[1]["metrics"] == ["val/eer"]
    assert compare.parse_args(["a"])[1]["metrics"] == compare.DEFAULT_METRICS


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="neither a run/sweep dir"):
        compare.main([str(tmp_path / "nope"), f"out={tmp_path / 'o'}"])


def test_wandb_source_reads_per_epoch_history(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = {
        "val/auroc": [{"epoch": 0, "val/auroc": 0.6}, {"epoch": 1, "val/auroc": 0.8}],
        "val/loss": [{"epoch": 0, "val/loss": 0.5}, {"epoch": 1, "val/loss": 0.3}],
    }
    asked = []

    class FakeRun:
        name, id = "bright-run-1", "abc123"

        def scan_history(self, keys: list[str]):
            return rows[keys[1]]

    class FakeApi:
        def run(self, path: str) -> FakeRun:
            asked.append(path)
            return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=FakeApi))
    paths = compare.main(["wandb://team/deepfake/abc123", f"out={tmp_path / 'o'}"])
    assert asked == ["team/deepfake/abc123"]
    assert "| bright-run-1 | 2 | 0.8000 (1) | 0.3000 (1) |" in paths["md"].read_text()
