"""The train x test AUROC matrix: read from eval runs' cross_dataset.json, primary rows left out, gaps shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepfake_lightning.evaluation.cross_dataset_matrix import build_matrix, main


def _eval_dir(path: Path, sets: dict[str, float], primary: str | None = None) -> Path:
    path.mkdir(parents=True)
    payload = {
        name: {"auroc": {"value": v, "ci_low": v - 0.02, "ci_high": min(1.0, v + 0.02)}, "n": 100}
        for name, v in sets.items()
    }
    (path / "cross_dataset.json").write_text(json.dumps({"sets": payload, "primary": primary}))
    return path


def test_matrix_rows_columns_cells_and_files(tmp_path: Path) -> None:
    a = _eval_dir(tmp_path / "a", {"folder (primary)": 0.5, "ffhq": 0.98, "dfdc": 0.61})
    b = _eval_dir(tmp_path / "b", {"folder": 0.9, "ffhq": 0.55, "dfdc": 0.83, "lfw": 0.7}, primary="folder")
    matrix = build_matrix({"ffhq (ImageNet)": a, "dfdc (ImageNet)": b})
    assert matrix["columns"] == ["ffhq", "dfdc", "lfw"]
    assert [c and c["value"] for c in matrix["auroc"][0]] == [0.98, 0.61, None]
    assert matrix["auroc"][1][2]["value"] == 0.7

    main(["out=" + str(tmp_path / "out"), f"ffhq (ImageNet)={a}", f"dfdc (ImageNet)={b}"])
    table = (tmp_path / "out" / "matrix.md").read_text()
    assert (
        "| ffhq (ImageNet) | **0.980 [0.960, 1.000]** | 0.610 [0.590, 0.630] | – | 0.610 | 0.610 |" in table
    )
    assert "primary" not in table
    assert (tmp_path / "out" / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "unseen.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "out" / "matrix.json").read_text())["rows"] == [
        "ffhq (ImageNet)",
        "dfdc (ImageNet)",
    ]


def test_missing_eval_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere/cross_dataset.json: not found"):
        build_matrix({"x": tmp_path / "nowhere"})


def test_unseen_sets_come_from_the_row_name(tmp_path: Path) -> None:
    """A row trained on two sets is judged on the third only; a self-blend row on its reals' set counts it seen."""
    cells = {"ffhq": 0.62, "dfdc": 0.81, "lfw": 0.93}
    rows = {
        "multi: dfdc+lfw": _eval_dir(tmp_path / "m", cells),
        "ffhq reals (self-blend)": _eval_dir(tmp_path / "s", cells),
        "all: ffhq+dfdc+lfw": _eval_dir(tmp_path / "a", cells),
    }
    matrix = build_matrix(rows)
    assert matrix["trained_on"]["multi: dfdc+lfw"] == ["dfdc", "lfw"]
    assert matrix["unseen"]["multi: dfdc+lfw"] == {"sets": ["ffhq"], "mean": 0.62, "min": 0.62}
    sbi = matrix["unseen"]["ffhq reals (self-blend)"]
    assert sbi["sets"] == ["dfdc", "lfw"] and sbi["mean"] == pytest.approx(0.87) and sbi["min"] == 0.81
    assert matrix["unseen"]["all: ffhq+dfdc+lfw"]["mean"] is None
