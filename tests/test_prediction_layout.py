"""Where prediction and its measuring tools live (issue 20 §2): checks that fail on the old layout.

The load test is a measuring tool: its code lives in `bench/`, and `inference/loadtest.py` only keeps the old
`python -m` command running (no definitions of its own).
"""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "deepfake_lightning"


def _definitions(path) -> list[str]:
    tree = ast.parse(path.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    return [getattr(node, "name", type(node).__name__) for node in ast.walk(tree) if isinstance(node, kinds)]


def test_load_test_code_lives_in_bench() -> None:
    assert (PACKAGE / "bench" / "loadtest.py").is_file() and (PACKAGE / "bench" / "raw_client.py").is_file()
    assert not (PACKAGE / "inference" / "raw_client.py").exists()
    old = PACKAGE / "inference" / "loadtest.py"
    assert not old.exists() or not _definitions(old), f"{old} must only forward to bench.loadtest"


def test_the_old_load_test_command_still_runs() -> None:
    """README once documented `python -m deepfake_lightning.inference.loadtest`: it reaches the same tool."""
    result = subprocess.run(
        [sys.executable, "-m", "deepfake_lightning.inference.loadtest"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Load test of the HTTP service" in result.stderr, result.stderr[-2000:]
