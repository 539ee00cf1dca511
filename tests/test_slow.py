"""Long real runs (`make test-slow`): the `make train` budget and the LFW face-swap recipe reach their AUROC."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _train(tmp_path: Path, *overrides: str) -> tuple[dict, float]:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfake_lightning.train",
            *overrides,
            f"paths.log_dir={tmp_path}/logs",
            "~callbacks.rich_progress_bar",
            "+trainer.enable_progress_bar=false",
        ],
        cwd=REPO,
        check=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    results = json.loads((run / "test_results.json").read_text())
    print(f"{overrides}: test AUROC {results['auroc']} in {wall:.0f} s")
    return results, wall


def test_make_train_budget_reaches_auroc_090(tmp_path: Path) -> None:
    """The exact `make train` job (synthetic data is generated once into data/, reused across runs)."""
    results, _ = _train(tmp_path, "+experiment=fast")
    assert results["auroc"]["value"] >= 0.9


def test_faceswap_scratch_on_lfw_reaches_auroc_075(tmp_path: Path, lfw_dir: Path) -> None:
    results, _ = _train(tmp_path, "+experiment=faceswap_scratch", f"data.root={lfw_dir}")
    assert results["auroc"]["value"] >= 0.75
    assert results["n"] == 200
