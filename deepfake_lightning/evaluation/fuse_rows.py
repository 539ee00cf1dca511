"""An ensemble row of the cross-dataset benchmark, fused from its members' eval predictions (no re-inference).

    python -m deepfake_lightning.evaluation.fuse_rows out=DIR "name=ENSEMBLE ROW" "MEMBER ROW=EVAL_DIR"...

Each EVAL_DIR is a member row's eval (`cross_dataset.json` and `cross_dataset/<set>_predictions.csv`, as
`python -m deepfake_lightning.eval ... extra_eval_sets=...` writes them; a benchmark light copy keeps both). Per
test set, the members' predictions are joined by path and combined by the rule `EnsembleDetector` serves
(`evaluation/ensemble_rule.py`: the mean of the calibrated p_fake, fixed before any test split was read), then
scored by `compute_metrics`, so the row's AUROC and its bootstrap CI are computed as every other row's are. The
members must have scored exactly the same images with the same labels; anything else is refused.

DIR gets a light copy `cross_dataset_matrix` reads like any row's (`cross_dataset.json`, `cross_dataset.md`),
the fused predictions (`cross_dataset/<set>_predictions.csv`: `logit` is log(p/(1-p)) of the fused p_fake, and
each member's p_fake follows as `p_fake_1`, `p_fake_2`...) and `ensemble.json` (members, rule, threshold,
trained_on). The ensemble trained on the union of its members' sets; the matrix reads a row's sets from its name,
so the ENSEMBLE ROW name must name exactly that union (checked here). Each set also records the paired-bootstrap
AUROC difference to each member (`vs_members`): is the ensemble better than the member it would replace?

Why no pandas: the join is a dict lookup over a few hundred paths, and pandas is not a dependency.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.cross_dataset_matrix import read_sets, sets_named
from deepfake_lightning.evaluation.ensemble_rule import (
    COMBINE_RULE,
    THRESHOLD_RULE,
    mean_p_fake,
    mean_threshold,
)
from deepfake_lightning.evaluation.markdown import cross_dataset_markdown
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.paired_bootstrap import paired_auroc_delta
from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv

PREDICTIONS_DIR = "cross_dataset"
DEFAULT_BOOTSTRAP = 1000
_EPS = 1e-12


class FusionError(ValueError):
    """The members cannot be fused into one row (different sets, images or labels, or a misnamed row)."""


def predictions_path(eval_dir: str | Path, set_name: str) -> Path:
    return Path(eval_dir) / PREDICTIONS_DIR / f"{set_name}_predictions.csv"


def _examples(paths: set[str], k: int = 3) -> str:
    return ", ".join(sorted(paths)[:k]) + (" ..." if len(paths) > k else "")


def join_members(row: str, set_name: str, members: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Members' predictions on one set (name -> `read_predictions_csv` record) joined by path, in the first
    member's order: ``{"path", "label", "p_fake": [one array per member]}``; refuses any mismatch."""
    (first_name, first), *others = members.items()
    where = f"ensemble row {row!r}, set {set_name!r}"
    for name, pred in members.items():
        if len(set(pred["path"])) != len(pred["path"]):
            raise FusionError(f"{where}: member {name!r} lists some test paths more than once")
    paths = list(first["path"])
    p_fakes = [np.asarray(first["p_fake"], dtype=np.float64)]
    for name, pred in others:
        index = {path: i for i, path in enumerate(pred["path"])}
        only_first, only_this = set(paths) - set(index), set(index) - set(paths)
        if only_first or only_this:
            raise FusionError(
                f"{where}: members {first_name!r} and {name!r} were not scored on the same test split: "
                f"{len(only_first)} path(s) only in the first ({_examples(only_first)}), {len(only_this)} only "
                f"in the second ({_examples(only_this)}); re-run their evals on the same data"
            )
        order = np.array([index[path] for path in paths], dtype=np.int64)
        differ = np.flatnonzero(np.asarray(pred["label"])[order] != np.asarray(first["label"]))
        if differ.size:
            raise FusionError(
                f"{where}: members {first_name!r} and {name!r} disagree on the label of {differ.size} test "
                f"image(s) (e.g. {paths[differ[0]]}); their test splits must be the same labelled images"
            )
        p_fakes.append(np.asarray(pred["p_fake"], dtype=np.float64)[order])
    return {"path": paths, "label": np.asarray(first["label"], dtype=np.int64), "p_fake": p_fakes}


def _member_record(name: str, eval_dir: str | Path) -> dict[str, Any]:
    payload = json.loads((Path(eval_dir) / "cross_dataset.json").read_text())
    threshold = payload.get("threshold")
    return {"name": name, "source": str(eval_dir), "threshold": 0.5 if threshold is None else threshold}


def fuse_rows(row: str, members: Mapping[str, str | Path], out: str | Path) -> Path:
    """Write the ensemble row ``row`` of ``members`` (member row name -> eval dir) into ``out``."""
    if len(members) < 2:
        raise FusionError(
            f"ensemble row {row!r}: an ensemble needs at least 2 member rows, got {len(members)}"
        )
    member_sets = {name: read_sets(path) for name, path in members.items()}
    columns = list(next(iter(member_sets.values())))
    for name, sets in member_sets.items():
        if sorted(sets) != sorted(columns):
            raise FusionError(
                f"ensemble row {row!r}: member {name!r} was scored on sets {sorted(sets)}, the first member on "
                f"{sorted(columns)}; every member needs the same test sets"
            )
    trained_on = [col for col in columns if any(col in name for name in members)]
    if sets_named(row, columns) != trained_on:
        raise FusionError(
            f"ensemble row {row!r} names the sets {sets_named(row, columns)}, but its members trained on "
            f"{trained_on}: the matrix reads a row's seen sets from its name, so name exactly those"
        )
    records = [_member_record(name, path) for name, path in members.items()]
    threshold = mean_threshold([r["threshold"] for r in records])
    out = Path(out)
    results = {}
    for set_name in columns:
        preds = {}
        for name, path in members.items():
            csv = predictions_path(path, set_name)
            if not csv.is_file():
                raise FileNotFoundError(
                    f"{csv}: not found; member {name!r} of ensemble row {row!r} needs its per-set predictions "
                    "(an eval run with extra_eval_sets writes them; a light copy keeps them from now on)"
                )
            preds[name] = read_predictions_csv(csv)
        joined = join_members(row, set_name, preds)
        p_fake = mean_p_fake(joined["p_fake"])
        n_bootstrap = int(member_sets[records[0]["name"]][set_name].get("n_bootstrap", DEFAULT_BOOTSTRAP))
        result = compute_metrics(p_fake, joined["label"], threshold=threshold, n_bootstrap=n_bootstrap)
        result["members"] = {
            name: member_sets[name][set_name].get("auroc") for name in members
        }  # each member's own cell, for the table beside the ensemble's
        result["vs_members"] = {
            name: paired_auroc_delta(p, p_fake, joined["label"], n_bootstrap=n_bootstrap)
            for name, p in zip(members, joined["p_fake"], strict=True)
            if n_bootstrap > 0 and 0 < joined["label"].sum() < joined["label"].size  # else no CI to give
        }
        results[set_name] = result
        clipped = np.clip(p_fake, _EPS, 1.0 - _EPS)
        write_predictions_csv(
            predictions_path(out, set_name),
            joined["path"],
            joined["label"],
            np.log(clipped / (1.0 - clipped)),
            p_fake,
            {f"p_fake_{i}": [repr(float(v)) for v in p] for i, p in enumerate(joined["p_fake"], start=1)},
        )
    return write_fused_row(out, row, records, trained_on, columns, threshold, results)


def write_fused_row(
    out: Path,
    row: str,
    members: Sequence[Mapping[str, Any]],
    trained_on: Sequence[str],
    columns: Sequence[str],
    threshold: float,
    results: Mapping[str, Any],
) -> Path:
    """`cross_dataset.json` in the eval's shape (no primary, no temperature of its own), `cross_dataset.md` and
    `ensemble.json`."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "primary": None,
        "temperature": None,
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE,
        "combine": COMBINE_RULE,
        "sets": dict(results),
    }
    (out / "cross_dataset.json").write_text(json.dumps(payload, indent=2, default=float))
    ensemble = {
        "name": row,
        "rule": COMBINE_RULE,
        "threshold_rule": THRESHOLD_RULE,
        "threshold": threshold,
        "members": list(members),
        "trained_on": list(trained_on),
        "unseen": [col for col in columns if col not in trained_on],
    }
    (out / "ensemble.json").write_text(json.dumps(ensemble, indent=2))
    names = " + ".join(f"`{m['name']}`" for m in members)
    note = (
        f"Ensemble of {names}: p_fake = the {COMBINE_RULE} (the rule `EnsembleDetector` serves, fixed a "
        f"priori), fused from the members' own eval predictions. Accuracy at threshold {threshold:.4g} "
        f"({THRESHOLD_RULE}). AUROC/AP/EER do not depend on the threshold."
    )
    (out / "cross_dataset.md").write_text(
        f"# Cross-dataset evaluation: {row}\n\n" + cross_dataset_markdown(results, note)
    )
    return out / "cross_dataset.json"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    given = {key: a.split("=", 1)[1] for a in args for key in ("out", "name") if a.startswith(key + "=")}
    pairs = [a.split("=", 1) for a in args if not a.startswith(("out=", "name="))]
    if set(given) != {"out", "name"} or len(pairs) < 2 or any(len(p) != 2 for p in pairs):
        raise SystemExit(
            'usage: python -m deepfake_lightning.evaluation.fuse_rows out=DIR "name=ENSEMBLE ROW" '
            '"MEMBER ROW=EVAL_DIR" "MEMBER ROW=EVAL_DIR"...'
        )
    try:
        print(fuse_rows(given["name"], dict(pairs), given["out"]))
    except (FusionError, FileNotFoundError) as err:
        raise SystemExit(f"fuse_rows: {err}") from None


if __name__ == "__main__":
    main()
