"""The analysis notebooks execute top to bottom (nbclient) on a sweep made here, and the ablation table they
share with `deepfake_lightning.sweeps.ablation` has the right numbers."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from deepfake_lightning.sweeps.ablation import write_ablation
from tests.conftest import REPO_ROOT
from tests.fake_sweep import make_ablation_sweep

NOTEBOOKS = REPO_ROOT / "notebooks"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_ablation_sweep(tmp_path / "synthetic")


def test_ablation_table_has_cis_and_paired_deltas_that_survive_the_light_export(
    sweep: Path, tmp_path: Path
) -> None:
    paths = write_ablation([sweep], tmp_path / "results", seconds=[90])
    rows = json.loads(paths["json"].read_text())["rows"]
    assert [(r["factor"], r["variant"]) for r in rows] == [
        ("baseline", "baseline"),
        ("attention", "attention_off"),
        ("loss", "loss_bce"),
    ]
    assert rows[0]["delta_test_auroc"] is None
    weaker, stronger = rows[1]["delta_test_auroc"], rows[2]["delta_test_auroc"]
    assert weaker["ci_low"] <= weaker["value"] < 0 < stronger["value"] <= stronger["ci_high"]
    assert stronger["value"] == pytest.approx(rows[2]["test_auroc"]["value"] - rows[0]["test_auroc"]["value"])
    table = paths["md"].read_text()
    assert (
        "### synthetic (n_test = 40, sweep wall time 1.5 min)" in table
        and "| attention | attention_off |" in table
    )
    # the committed light copy holds no predictions.csv, but recomputes the same paired deltas
    light = tmp_path / "results" / "synthetic"
    assert not list(light.glob("*/predictions.csv")) and len(list(light.glob("*/test_scores.csv"))) == 3
    again = json.loads(write_ablation([light], tmp_path / "again")["json"].read_text())["rows"]
    assert again[2]["delta_test_auroc"] == rows[2]["delta_test_auroc"]
    assert "loss_bce" in (tmp_path / "results" / "ablation.csv").read_text()


@pytest.mark.parametrize("name", ["ablation_analysis", "training_curves"])
def test_notebook_executes_on_a_sweep(name: str, sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEP_DIR", str(sweep))
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    assert str(sweep) in "".join(out.get("text", "") for out in outputs)  # it read the sweep it was given
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == {"ablation_analysis": 3, "training_curves": 1}[name]
    tables = "".join(out.get("data", {}).get("text/markdown", "") for out in outputs)
    assert "attention_off" in tables


def test_seed_spread_counts_only_the_baseline_and_its_seeds() -> None:
    from deepfake_lightning.sweeps.ablation import _seed_spread

    def row(factor: str, auroc: float) -> dict:
        return {"dataset": "d", "status": "ok", "factor": factor, "test_auroc": {"value": auroc}}

    rows = [row("baseline", 0.9), row("seed", 0.8), row("seed", 0.85), row("attention", 0.5)]
    line = _seed_spread(rows, "d")
    assert "3 seeds" in line and "mean 0.8500" in line and "sd 0.0500" in line and "0.8000–0.9000" in line
    assert _seed_spread(rows[:1], "d") == ""


def test_a_dataset_not_rerun_keeps_its_light_copy_and_wall_time(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = json.loads(write_ablation([sweep], out, seconds=[90])["json"].read_text())
    again = json.loads(write_ablation([out / sweep.name], out)["json"].read_text())
    assert again["sweep_seconds"] == {sweep.name: 90.0}
    assert [r["test_auroc"] for r in again["rows"]] == [r["test_auroc"] for r in first["rows"]]
    assert (out / sweep.name / "sweep_summary.json").is_file()
