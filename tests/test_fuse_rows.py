"""Ensemble rows of the cross-dataset benchmark: fused from the members' eval predictions, refused on mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from deepfake_lightning.evaluation.cross_dataset_matrix import build_matrix
from deepfake_lightning.evaluation.fuse_rows import FusionError, fuse_rows, main
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv

SETS = ("ffhq", "dfdc", "lfw")
GAN, SWAP = "ffhq (ImageNet)", "dfdc (ImageNet, aligned crops)"


def _paths(set_name: str, n: int = 40) -> list[str]:
    return [f"data/{set_name}/{'fake' if i % 2 else 'real'}/{i:03d}.jpg" for i in range(n)]


def _member(path: Path, seed: int, edit: dict | None = None, threshold: float = 0.5) -> Path:
    """An eval dir as `eval` writes it: cross_dataset.json (primary + extra sets) and one CSV per extra set.
    `edit[set]` changes that set's (paths, labels) before writing; rows are shuffled per member."""
    rng = np.random.default_rng(seed)
    sets = {"folder": {"auroc": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}, "n": 8}}
    for name in SETS:
        paths = _paths(name)
        labels = np.array([int("/fake/" in p) for p in paths])
        if edit and name in edit:
            paths, labels = edit[name](paths, labels)
        p_fake = np.clip(0.3 * labels + rng.uniform(0, 0.7, len(paths)), 0, 1)
        order = rng.permutation(len(paths))  # a join by row order would pair different images
        write_predictions_csv(
            path / "cross_dataset" / f"{name}_predictions.csv",
            [paths[i] for i in order],
            labels[order],
            np.log(p_fake[order] / (1 - p_fake[order] + 1e-9) + 1e-9),
            p_fake[order],
        )
        sets[name] = {**compute_metrics(p_fake, labels, n_bootstrap=20), "n_bootstrap": 50}
    payload = {"primary": "folder", "threshold": threshold, "sets": sets}
    (path / "cross_dataset.json").write_text(json.dumps(payload, default=float))
    return path


def _by_path(csv: Path) -> dict[str, tuple[int, float]]:
    pred = read_predictions_csv(csv)
    return {
        p: (int(y), float(q)) for p, y, q in zip(pred["path"], pred["label"], pred["p_fake"], strict=True)
    }


def test_fused_auroc_is_sklearns_on_the_mean_probability(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2, threshold=0.3)
    fuse_rows("ensemble: ffhq + dfdc", {GAN: a, SWAP: b}, tmp_path / "ens")
    fused = json.loads((tmp_path / "ens" / "cross_dataset.json").read_text())
    assert fused["threshold"] == pytest.approx(0.4)  # the mean of the members' thresholds
    for name in SETS:
        pa, pb = (_by_path(m / "cross_dataset" / f"{name}_predictions.csv") for m in (a, b))
        labels = [pa[p][0] for p in pa]
        mean = [(pa[p][1] + pb[p][1]) / 2 for p in pa]
        cell = fused["sets"][name]
        assert cell["auroc"]["value"] == pytest.approx(roc_auc_score(labels, mean), abs=1e-12)
        assert cell["auroc"]["ci_low"] <= cell["auroc"]["ci_high"] and cell["n_bootstrap"] == 50
        assert set(cell["vs_members"]) == {GAN, SWAP}
        written = _by_path(tmp_path / "ens" / "cross_dataset" / f"{name}_predictions.csv")
        assert {p: v[1] for p, v in written.items()} == pytest.approx(dict(zip(pa, mean, strict=True)))


def _drop_one_add_one(paths: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    return [*paths[1:], "data/dfdc/real/elsewhere.jpg"], np.array([*labels[1:], 0])


def _flip_one(paths: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    labels = labels.copy()
    labels[3] = 1 - labels[3]
    return paths, labels


def test_members_on_different_test_images_are_refused(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2, edit={"dfdc": _drop_one_add_one})
    with pytest.raises(FusionError, match=r"'ensemble: ffhq \+ dfdc', set 'dfdc'.*not scored on the same"):
        fuse_rows("ensemble: ffhq + dfdc", {GAN: a, SWAP: b}, tmp_path / "ens")
    assert not (tmp_path / "ens" / "cross_dataset.json").exists()
    with pytest.raises(SystemExit, match=r"elsewhere\.jpg"):  # the command says which image, no traceback
        main([f"out={tmp_path / 'ens'}", "name=ensemble: ffhq + dfdc", f"{GAN}={a}", f"{SWAP}={b}"])


def test_members_disagreeing_on_a_label_are_refused(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2, edit={"lfw": _flip_one})
    with pytest.raises(FusionError, match=r"set 'lfw'.*disagree on the label of 1 test image.*/003\.jpg"):
        fuse_rows("ensemble: ffhq + dfdc", {GAN: a, SWAP: b}, tmp_path / "ens")


def test_trained_on_is_the_union_of_the_members_sets(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2)
    members = {GAN: a, "multi: dfdc+lfw": b}
    fuse_rows("ensemble: ffhq + multi: dfdc+lfw", members, tmp_path / "ens")
    ensemble = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert ensemble["trained_on"] == ["ffhq", "dfdc", "lfw"] and ensemble["unseen"] == []
    assert [m["name"] for m in ensemble["members"]] == [GAN, "multi: dfdc+lfw"]
    assert ensemble["rule"] == "mean of calibrated p_fake"
    # a name that hides a member's set would make the matrix count it as unseen: refused
    with pytest.raises(
        FusionError, match=r"names the sets \['ffhq', 'dfdc'\].*trained on \['ffhq', 'dfdc', 'lfw'\]"
    ):
        fuse_rows("ensemble: ffhq + dfdc", members, tmp_path / "bad")


def test_a_fused_row_is_a_matrix_row(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2)
    fuse_rows("ensemble: ffhq + dfdc", {GAN: a, SWAP: b}, tmp_path / "ens")
    matrix = build_matrix({GAN: a, SWAP: b, "ensemble: ffhq + dfdc": tmp_path / "ens"})
    fused = json.loads((tmp_path / "ens" / "cross_dataset.json").read_text())["sets"]
    assert matrix["columns"] == list(SETS)  # the members' primary is left out, the ensemble has none
    assert [cell["value"] for cell in matrix["auroc"][2]] == [fused[s]["auroc"]["value"] for s in SETS]
    assert matrix["trained_on"]["ensemble: ffhq + dfdc"] == ["ffhq", "dfdc"]
    assert matrix["unseen"]["ensemble: ffhq + dfdc"]["sets"] == ["lfw"]
    assert matrix["unseen"]["ensemble: ffhq + dfdc"]["mean"] == fused["lfw"]["auroc"]["value"]


def test_a_member_without_predictions_is_named(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 1), _member(tmp_path / "b", 2)
    (b / "cross_dataset" / "lfw_predictions.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"b/cross_dataset/lfw_predictions.csv: not found; member"):
        fuse_rows("ensemble: ffhq + dfdc", {GAN: a, SWAP: b}, tmp_path / "ens")
