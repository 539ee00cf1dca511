"""Cross-dataset evaluation: whole folders as test sets and extra sets scored in one run into one table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfake_lightning.data import DeepfakeDataModule
from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.cross_dataset import extra_set_config
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from tests.conftest import make_folder_tree
from tests.tiny_run import eval_config, shared_tiny_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return shared_tiny_run(tmp_path_factory, ("calibration.threshold_rule=eer",))


def test_extra_set_is_a_whole_folder_seen_through_the_primary_preprocessing() -> None:
    primary = {"_target_": "x.Synthetic", "image_size": 32, "batch_size": 8, "normalize": {"mean": [0] * 3},
               "n_train": 5, "root": "/primary"}  # fmt: skip
    node = extra_set_config(primary, {"root": "/lfw"})
    assert node == {
        "_target_": "deepfake_lightning.data.DeepfakeDataModule", "layout": "folder", "use_all_for_test": True,
        "root": "/lfw", "image_size": 32, "batch_size": 8, "normalize": {"mean": [0] * 3},
    }  # fmt: skip
    own = extra_set_config(primary, {"_target_": "my.Module", "root": "/k", "batch_size": 2})
    assert own["_target_"] == "my.Module" and own["batch_size"] == 2 and "layout" not in own
    cut = {"enabled": True, "detector": "centerface", "alignment": "landmarks", "scale": 1.3, "size": 176}
    assert extra_set_config({**primary, "face_crop": cut}, {"root": "/lfw"})["face_crop"] == cut  # the input
    assert not extra_set_config({**primary, "face_crop": cut}, {"face_crop": {"enabled": False}})[
        "face_crop"
    ]["enabled"]  # a prepared set: crops already


def test_eval_scores_whole_folders_and_extra_sets_in_one_table(tiny_run: tuple[Path, Path, Path]) -> None:
    base, run, data_root = tiny_run
    other = make_folder_tree(base / "other_faces", per_class=6, size=40)
    overrides = [
        "data=folder", f"data.root={data_root}", "data.use_all_for_test=true",
        f"+extra_eval_sets.other.root={other}", f"+extra_eval_sets.again.root={data_root}",
        "explain.n_per_group=1", "n_bootstrap=50",
    ]  # fmt: skip
    cfg = eval_config(base, "eval_cross", run / "checkpoints" / "best.ckpt", overrides)
    results = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    assert results["n"] == 40 and results["data"]["test"] == {"real": 20, "fake": 20}  # whole folder = test

    table = json.loads((out / "cross_dataset.json").read_text())
    calibration = json.loads((run / "calibration.json").read_text())
    assert list(table["sets"]) == ["folder", "other", "again"]
    assert table["threshold"] == pytest.approx(calibration["threshold"])
    assert [table["sets"][k]["n"] for k in ("folder", "other", "again")] == [40, 12, 40]
    for name in ("other", "again"):
        scored = table["sets"][name]
        assert scored["threshold"] == pytest.approx(calibration["threshold"])
        preds = read_predictions_csv(out / "cross_dataset" / f"{name}_predictions.csv")
        again = compute_metrics(preds["p_fake"], preds["label"], threshold=scored["threshold"], n_bootstrap=0)
        assert scored["auroc"]["value"] == pytest.approx(again["auroc"]["value"])
        assert scored["accuracy"]["value"] == pytest.approx(again["accuracy"]["value"])
    # the same folder scored by trainer.test and by the extra-set loop gives the same logits (up to float
    # rounding of a different memory layout; the tiny model's near-tied scores make AUROC itself too fragile)
    primary = read_predictions_csv(out / "predictions.csv")
    again = read_predictions_csv(out / "cross_dataset" / "again_predictions.csv")
    assert sorted(primary["path"]) == sorted(again["path"])
    by_path = dict(zip(again["path"], again["logit"], strict=True))
    np.testing.assert_allclose(primary["logit"], [by_path[p] for p in primary["path"]], atol=1e-4)

    markdown = (out / "cross_dataset.md").read_text()
    assert sum(line.startswith(("| folder", "| other", "| again")) for line in markdown.splitlines()) == 3
    report = (out / "REPORT.md").read_text()
    assert "## Cross-dataset" in report and "## Explanations" in report
    assert (out / "explanations.png").stat().st_size > 0


def test_lfw_faceswap_as_a_cross_dataset_folder(tiny_run: tuple[Path, Path, Path], lfw_dir: Path) -> None:
    base, run, data_root = tiny_run
    whole = DeepfakeDataModule(str(lfw_dir), layout="folder", use_all_for_test=True).counts()
    assert whole["train"] == whole["valid"] == {"real": 0, "fake": 0}
    assert whole["test"]["real"] > 0 and whole["test"]["fake"] > 0
    # scoring all ~2000 LFW images takes minutes on 2 shared cores; a copy of 12 per class keeps the real
    # JPEGs and the folder layout
    sample = base / "lfw_sample"
    for cls in ("real", "fake"):
        (sample / cls).mkdir(parents=True, exist_ok=True)
        for path in sorted((lfw_dir / cls).iterdir())[:12]:
            shutil.copy(path, sample / cls / path.name)
    overrides = ["data=folder", f"data.root={data_root}", f"+extra_eval_sets.lfw.root={sample}",
                 "explain.enabled=false", "n_bootstrap=50"]  # fmt: skip
    cfg = eval_config(base, "eval_lfw", run / "checkpoints" / "best.ckpt", overrides)
    evaluate(cfg)
    lfw = json.loads((Path(cfg.paths.output_dir) / "cross_dataset.json").read_text())["sets"]["lfw"]
    assert (lfw["n"], lfw["n_real"], lfw["n_fake"]) == (24, 12, 12)
    assert 0.0 <= lfw["auroc"]["value"] <= 1.0 and lfw["auroc"]["ci_low"] <= lfw["auroc"]["ci_high"]
