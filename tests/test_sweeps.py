"""Multiruns as real subprocesses: one dir per job, failures isolated in their dirs, the sweep summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from deepfake_lightning.sweeps import write_sweep_summary
from tests.sweep_helpers import run_train, tiny_synthetic


def test_multirun_isolates_failures_and_writes_summary(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # jobs in order: (AdamW, 0.001) trains; (missing optimizer class, 0.001) crashes inside fit;
    # (AdamW, -1) and (missing, -1) stop at config validation
    proc = run_train(
        "-m",
        *tiny_synthetic(tmp_path),
        "model.optimizer.lr=0.001,-1",
        "model.optimizer._target_=torch.optim.AdamW,torch.optim.NoSuchOptimizer",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]

    ok = json.loads((sweep / "0" / "run_summary.json").read_text())
    assert ok["status"] == "ok" and "val/auroc" in ok
    assert (sweep / "0" / "test_results.json").is_file()
    crash = json.loads((sweep / "1" / "error.json").read_text())
    assert "NoSuchOptimizer" in crash["error"] and crash["traceback"]
    for job in ("2", "3"):
        invalid = json.loads((sweep / job / "error.json").read_text())
        assert "model.optimizer.lr=-1" in invalid["error"]
        assert not (sweep / job / "run_summary.json").exists()

    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["optimized_metric"] == "val/auroc"
    assert [j["status"] for j in summary["jobs"]] == ["ok", "failed", "failed", "failed"]
    assert [j["job"] for j in summary["jobs"]] == [0, 1, 2, 3]
    first = summary["jobs"][0]
    assert first["metric_value"] == ok["val/auroc"]
    assert "model.optimizer.lr=0.001" in first["overrides"]
    assert set(first["test"]["auroc"]) == {"value", "ci_low", "ci_high"}
    assert (
        first["test"]["auroc"]["ci_low"]
        <= first["test"]["auroc"]["value"]
        <= first["test"]["auroc"]["ci_high"]
    )
    with (sweep / "sweep_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["ok", "failed", "failed", "failed"]
    assert "NoSuchOptimizer" in rows[1]["error"]
    assert rows[0]["test_auroc_ci_low"] != ""


def _job(sweep: Path, num: int, overrides: list[str], files: dict[str, object]) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    for name, payload in files.items():
        (job / name).write_text(json.dumps(payload))


def test_summary_reports_incomplete_jobs_and_varying_overrides(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    metric = {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95}
    _job(
        sweep,
        0,
        ["+experiment=fast", "model.loss.name=bce"],
        {
            "run_summary.json": {"status": "ok", "val/auroc": 0.8},
            "test_results.json": {"auroc": metric, "n": 40},
        },
    )
    _job(sweep, 1, ["+experiment=fast", "model.loss.name=focal"], {})  # killed before writing anything
    _job(sweep, 10, ["+experiment=fast", "model.loss.name=x"], {"error.json": {"error": "ConfigError: x"}})
    json_path, csv_path = write_sweep_summary(sweep, "val/auroc")
    jobs = json.loads(json_path.read_text())["jobs"]
    assert [(j["job"], j["status"]) for j in jobs] == [(0, "ok"), (1, "incomplete"), (10, "failed")]
    assert [j["label"] for j in jobs] == ["model.loss.name=bce", "model.loss.name=focal", "model.loss.name=x"]
    assert jobs[0]["test"]["auroc"] == metric and jobs[0]["n_test"] == 40
    assert jobs[2]["error"] == "ConfigError: x"
    assert csv_path.read_text().count("\n") == 4
