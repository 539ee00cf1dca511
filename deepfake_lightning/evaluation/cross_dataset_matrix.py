"""The train-set x test-set AUROC matrix (DeepfakeBench-style tables) from several eval runs.

    python -m deepfake_lightning.evaluation.cross_dataset_matrix out=DIR "ROW=EVAL_DIR" ["ROW=EVAL_DIR" ...]

Each EVAL_DIR is a `python -m deepfake_lightning.eval` run with `extra_eval_sets` (its `cross_dataset.json`);
ROW names the model (e.g. `ffhq_stylegan (ImageNet)`). Columns are the extra sets' names, in first-seen order;
the eval's own primary row (named in the file's `primary`) is left out, so name every test set as an extra set. Writes
`matrix.json`, `matrix.md`, `matrix.png` and `unseen.png` into DIR.

Name each row with the sets it trained on (`ffhq_stylegan (DINOv2-S ln_tune)`, `multi: dfdc_faces+lfw_faceswap`,
`ffhq_stylegan reals (self-blend)`): a column whose name appears in the row name counts as seen by that row, and
the others as never seen. Why from the name: the name is what a reader of the table checks, so a row whose name
hides a training set would be wrong twice. Per row, `unseen` holds the mean and the minimum AUROC over the sets
it never trained on: the question "does it catch a kind of fake it never saw?".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepfake_lightning.evaluation.markdown import fmt_ci, markdown_table
from deepfake_lightning.evaluation.plots import plot_auroc_matrix, plot_unseen_means

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


def sets_named(row: str, columns: Sequence[str]) -> list[str]:
    """The sets a row trained on, read from its name: the matrix counts those as seen."""
    return [col for col in columns if col in row]


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
        "trained_on": {row: sets_named(row, columns) for row in rows},
        "unseen": {
            row: unseen_summary(row, columns, row_cells) for row, row_cells in zip(rows, cells, strict=True)
        },
        "sources": {k: str(v) for k, v in rows.items()},
    }


def unseen_summary(
    row: str, columns: Sequence[str], cells: Sequence[Mapping[str, Any] | None]
) -> dict[str, Any]:
    """Mean and minimum AUROC over the columns the row never trained on (None where it saw every set)."""
    values = {
        col: cell["value"]
        for col, cell in zip(columns, cells, strict=True)
        if cell is not None and col not in row
    }
    if not values:
        return {"sets": [], "mean": None, "min": None}
    return {"sets": list(values), "mean": sum(values.values()) / len(values), "min": min(values.values())}


def matrix_markdown(matrix: Mapping[str, Any]) -> str:
    """The table, seen cells in bold, with the mean and minimum over the sets each row never trained on."""
    header = ["trained on \\ tested on", *matrix["columns"], "mean unseen", "min unseen"]
    body = []
    for row, cells in zip(matrix["rows"], matrix["auroc"], strict=True):
        shown = [
            "–" if cell is None else (f"**{fmt_ci(cell, 3)}**" if col in row else fmt_ci(cell, 3))
            for col, cell in zip(matrix["columns"], cells, strict=True)
        ]
        unseen = matrix["unseen"][row]
        body.append(
            [row, *shown, *("–" if unseen[k] is None else f"{unseen[k]:.3f}" for k in ("mean", "min"))]
        )
    return markdown_table(header, body)


def write_matrix(matrix: Mapping[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(matrix, indent=2))
    note = (
        "Test AUROC with 95% stratified bootstrap CIs; every cell scores the column set's own test split. Bold: "
        "a set the row trained on (named in the row); mean/min unseen: over the other sets.\n"
    )
    (out / "matrix.md").write_text("# Cross-dataset AUROC\n\n" + matrix_markdown(matrix) + "\n" + note)
    plot_auroc_matrix(matrix["rows"], matrix["columns"], matrix["auroc"], out / "matrix.png")
    plot_unseen_means(matrix["unseen"], out / "unseen.png")
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
