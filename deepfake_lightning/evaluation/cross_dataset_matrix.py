"""The train-set x test-set AUROC matrix (DeepfakeBench-style tables) from several eval runs.

    python -m deepfake_lightning.evaluation.cross_dataset_matrix out=DIR "ROW=EVAL_DIR" ["ROW=EVAL_DIR" ...]

Each EVAL_DIR is a `python -m deepfake_lightning.eval` run with `extra_eval_sets` (its `cross_dataset.json`);
ROW names the model (e.g. `ffhq_stylegan (ImageNet)`). Columns are the extra sets' names, in first-seen order;
the eval's own primary row (named in the file's `primary`) is left out, so name every test set as an extra set. Writes
`matrix.json`, `matrix.md` and `matrix.png` into DIR.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepfake_lightning.evaluation.markdown import fmt_ci, markdown_table
from deepfake_lightning.evaluation.plots import plot_auroc_matrix

PRIMARY_SUFFIX = " (primary)"


def read_sets(eval_dir: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(eval_dir) / "cross_dataset.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; run `python -m deepfake_lightning.eval ... extra_eval_sets=...`"
        )
    payload = json.loads(path.read_text())
    primary = payload.get("primary")
    return {
        name: res
        for name, res in payload["sets"].items()
        if name != primary and not name.endswith(PRIMARY_SUFFIX)
    }


def build_matrix(rows: Mapping[str, str | Path]) -> dict[str, Any]:
    """``{"rows", "columns", "auroc": [[{value, ci_low, ci_high, n} | None]], "sources"}``."""
    per_row = {name: read_sets(path) for name, path in rows.items()}
    columns: list[str] = []
    for sets in per_row.values():
        columns += [name for name in sets if name not in columns]
    cells = [
        [
            {**sets[col]["auroc"], "n": sets[col].get("n")} if col in sets and "auroc" in sets[col] else None
            for col in columns
        ]
        for sets in per_row.values()
    ]
    return {
        "rows": list(rows),
        "columns": columns,
        "auroc": cells,
        "sources": {k: str(v) for k, v in rows.items()},
    }


def matrix_markdown(matrix: Mapping[str, Any]) -> str:
    header = ["trained on \\ tested on", *matrix["columns"]]
    body = [
        [row, *("–" if cell is None else fmt_ci(cell, 3) for cell in cells)]
        for row, cells in zip(matrix["rows"], matrix["auroc"], strict=True)
    ]
    return markdown_table(header, body)


def write_matrix(matrix: Mapping[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(matrix, indent=2))
    note = (
        "Test AUROC with 95% stratified bootstrap CIs; every cell scores the column set's own test split.\n"
    )
    (out / "matrix.md").write_text("# Cross-dataset AUROC\n\n" + matrix_markdown(matrix) + "\n" + note)
    plot_auroc_matrix(matrix["rows"], matrix["columns"], matrix["auroc"], out / "matrix.png")
    return out / "matrix.md"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    out = next((a.split("=", 1)[1] for a in args if a.startswith("out=")), None)
    pairs = [a.split("=", 1) for a in args if not a.startswith("out=")]
    if out is None or not pairs or any(len(p) != 2 for p in pairs):
        raise SystemExit(
            'usage: python -m deepfake_lightning.evaluation.cross_dataset_matrix out=DIR "ROW=EVAL_DIR"...'
        )
    print(write_matrix(build_matrix(dict(pairs)), out))


if __name__ == "__main__":
    main()
