"""The leave-one-dataset-out table of `+experiment=lodo` training runs.

    python -m deepfake_lightning.sweeps.lodo out=DIR RUN_OR_SWEEP_DIR [...]

Each run trained on the sources of its ``data=multi`` config but ``data.held_out`` and tested on all of them
(`test_results.json` ``per_source``); a multirun dir stands for its jobs. One row per run: the held-out set, the
sets trained on, the held-out test AUROC [CI] (the LODO cell) and each trained set's own test AUROC. Writes
``lodo.json`` and ``lodo.md`` into DIR. Row names follow the cross-dataset matrix: ``multi: a+b``.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from deepfake_lightning.data.multi_sources import held_out_names
from deepfake_lightning.evaluation.markdown import fmt, fmt_ci, markdown_table, value_of
from deepfake_lightning.sweeps.runs import find_job_dirs, is_run_dir


def row_name(trained_on: Sequence[str]) -> str:
    """The matrix row of a model trained on these sets: ``multi: dfdc_faces+lfw_faceswap``."""
    return f"multi: {'+'.join(trained_on)}"


def lodo_row(run_dir: str | Path) -> dict[str, Any]:
    """What one LODO training run measured; its files must say which sources it held out."""
    run_dir = Path(run_dir)
    config, results = run_dir / "config.yaml", run_dir / "test_results.json"
    for path in (config, results):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; expected a finished `+experiment=lodo` training run")
    data = OmegaConf.to_container(OmegaConf.load(config).data)
    held_out = held_out_names(data) if isinstance(data, dict) else []
    per_source = json.loads(results.read_text()).get("per_source") or {}
    if not held_out or not per_source:
        raise ValueError(
            f"{run_dir}: not a leave-one-out run (data=multi with data.held_out and per_source results)"
        )
    trained_on = [name for name in data["sources"] if name not in held_out]
    return {
        "run": str(run_dir),
        "name": row_name(trained_on),
        "held_out": held_out,
        "trained_on": trained_on,
        "auroc": {name: per_source[name]["auroc"] for name in per_source},
        "n": {name: per_source[name].get("n") for name in per_source},
    }


def _run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    found: list[Path] = []
    for path in map(Path, paths):
        found += [path] if is_run_dir(path) else find_job_dirs(path)
    return found


def lodo_markdown(rows: Sequence[dict[str, Any]]) -> str:
    body = [
        [
            ", ".join(row["held_out"]),
            row["name"],
            "; ".join(f"{name} {fmt_ci(row['auroc'][name], 3)}" for name in row["held_out"]),
            "; ".join(f"{name} {fmt_ci(row['auroc'][name], 3)}" for name in row["trained_on"]),
        ]
        for row in rows
    ]
    held = [value_of(row["auroc"][name]) for row in rows for name in row["held_out"]]
    table = markdown_table(("held out", "trained on", "held-out test AUROC", "in-domain test AUROC"), body)
    mean = (
        f"\nMean held-out AUROC over {len(held)} set(s): {fmt(statistics.fmean(held), 3)}.\n" if held else ""
    )
    return table + mean


def write_lodo(paths: Sequence[str | Path], out: str | Path) -> Path:
    """A job that failed (its `error.json`) is listed under ``failed`` and left out of the table; any other run
    without results is an error."""
    runs = _run_dirs(paths)
    failed = [str(run) for run in runs if (run / "error.json").is_file()]
    rows = [lodo_row(run) for run in runs if str(run) not in failed]
    if not rows:
        raise FileNotFoundError(f"no finished run dirs in {list(map(str, paths))} (failed: {failed})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lodo.json").write_text(json.dumps({"rows": rows, "failed": failed}, indent=2, default=float))
    note = (
        "Each row trained on the sets it names and was tested once on every set's test split (95% bootstrap "
        "CIs); the held-out set was never seen in training or validation.\n"
    )
    note += "".join(f"\nFailed, not in the table: `{run}` (its error.json).\n" for run in failed)
    (out / "lodo.md").write_text("# Leave one dataset out\n\n" + lodo_markdown(rows) + "\n" + note)
    return out / "lodo.md"


def main(argv: Sequence[str] | None = None) -> Path:
    args = list(sys.argv[1:] if argv is None else argv)
    out = next((a.split("=", 1)[1] for a in args if a.startswith("out=")), None)
    runs = [a for a in args if not a.startswith("out=")]
    if out is None or not runs:
        raise SystemExit(__doc__)
    path = write_lodo(runs, out)
    print(path.read_text())
    return path


if __name__ == "__main__":
    main()
