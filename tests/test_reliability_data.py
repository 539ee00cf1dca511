"""Bad inputs through the data module: every bad file is skipped, counted and logged, no good image is lost,
layout mistakes stop with one clear error, and leakage or a one-class split is warned about."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from deepfake_lightning.callbacks import SkippedImagesCallback
from deepfake_lightning.data import DatasetLayoutError, DeepfakeDataModule
from deepfake_lightning.data.leakage import find_cross_split_duplicates
from tests.bad_inputs import (
    IGNORED,
    LOAD,
    SKIP,
    add_good_images,
    build_file_corpus,
    csv_rows_for,
    split_tree,
    write_140k_csvs,
)


def _datamodule(root: Path, **kwargs) -> DeepfakeDataModule:  # noqa: ANN003
    settings = {"layout": "folder", "image_size": 32, "batch_size": 64, "num_workers": 0, **kwargs}
    return DeepfakeDataModule(str(root), **settings)


def _loaded_and_skipped(loader) -> tuple[list[str], set[str]]:  # noqa: ANN001
    loaded: list[str] = []
    skipped: set[str] = set()
    for batch in loader:
        assert batch["image"].shape[0] == len(batch["path"])
        if len(batch["path"]):
            assert batch["image"].shape[1:] == (3, 32, 32) and torch.isfinite(batch["image"]).all()
        loaded.extend(batch["path"])
        skipped.update(batch["skipped"])
    return loaded, skipped


@pytest.fixture
def corpus_tree(tmp_path: Path) -> tuple[Path, list, set[str], set[str]]:
    """root/{train,valid,test}/{real,fake} with 2 good JPEGs each, and the bad-input corpus in train/real."""
    root = split_tree(tmp_path / "data", per_class=2)
    corpus = build_file_corpus(root / "train" / "real")
    folder = root / "train" / "real"
    good = {str(p) for p in root.glob("*/*/good_*.jpg")}
    good |= {str(folder / c.name) for c in corpus if c.data == LOAD}
    bad = {str(folder / c.name) for c in corpus if c.data == SKIP}
    return root, corpus, good, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_every_good_image_loads_and_every_bad_one_is_skipped(corpus_tree, workers: int) -> None:
    root, corpus, good, bad = corpus_tree
    assert len(corpus) >= 25 and {c.data for c in corpus} == {LOAD, SKIP, IGNORED}
    dm = _datamodule(root, num_workers=workers, persistent_workers=False)
    dm.setup()
    listed = {path for samples in dm.index.values() for path, _ in samples}
    assert listed == good | bad  # hidden files, dirs named .jpg, notes.txt and the link loop: never listed
    loaded, skipped = [], set()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        paths, dropped = _loaded_and_skipped(loader)
        loaded += paths
        skipped |= dropped
    assert sorted(loaded) == sorted(good)  # each good image exactly once: none lost, none doubled
    assert skipped == bad
    assert len(loaded) == 12 + sum(c.data == LOAD for c in corpus)


def test_verify_drops_exactly_the_bad_files_and_logs_each(corpus_tree, caplog) -> None:  # noqa: ANN001
    root, _, good, bad = corpus_tree
    dm = _datamodule(root, verify=True)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert set(dm.verify_skipped) == bad and len(dm.verify_skipped) == len(bad)
    assert {p for samples in dm.index.values() for p, _ in samples} == good
    assert f"verify: skipped {len(bad)} unreadable image(s)" in caplog.text
    for path in bad:
        assert f"skipped {path}" in caplog.text


def test_on_bad_image_raise_names_the_first_bad_file(corpus_tree) -> None:
    root, _, _, bad = corpus_tree
    from deepfake_lightning.data import BadImageError

    dm = _datamodule(root, verify=True, on_bad_image="raise")
    with pytest.raises(BadImageError) as info:
        dm.setup()
    assert str(info.value).split(":")[0] in bad


def test_test_stage_counts_skips_and_scores_every_good_image(tmp_path: Path) -> None:
    """Trainer.test over a test split holding the corpus: predictions.csv has one row per good image (the
    non-UTF-8 name included) and skipped_images.json lists exactly the bad ones."""
    import lightning as L

    from deepfake_lightning.evaluation.predictions import read_predictions_csv, write_predictions_csv
    from deepfake_lightning.modules import DetectorModule

    root = split_tree(tmp_path / "data", per_class=2)
    corpus = build_file_corpus(root / "test" / "fake")
    folder = root / "test" / "fake"
    good = {str(p) for p in root.glob("test/*/good_*.jpg")} | {
        str(folder / c.name) for c in corpus if c.data == LOAD
    }
    bad = {str(folder / c.name) for c in corpus if c.data == SKIP}
    dm = _datamodule(root, batch_size=8)
    callback = SkippedImagesCallback(str(tmp_path / "run"))
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = DetectorModule(preprocessing={"image_size": 32})
    trainer.test(module, datamodule=dm)
    scored = module.test_outputs["path"]
    assert sorted(scored) == sorted(good)
    assert callback.skipped == {"test": bad} and callback.total() == len(bad)
    import json

    assert set(json.loads((tmp_path / "run" / "skipped_images.json").read_text())["test"]) == bad
    logits = torch.cat(module.test_outputs["logit"])
    out = write_predictions_csv(
        tmp_path / "run" / "predictions.csv",
        scored,
        torch.cat(module.test_outputs["target"]),
        logits,
        torch.sigmoid(logits),
    )
    assert sorted(read_predictions_csv(out)["path"]) == sorted(good)  # non-UTF-8 names survive the round trip


def _load_as_nobody(path: Path) -> str:
    """load_rgb(path) in a forked child that dropped root for `nobody` (modules already imported)."""
    from deepfake_lightning.data.images import BadImageError, load_rgb

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                load_rgb(path)
                message = "LOADED"
            except BadImageError as err:
                message = f"SKIP {err}"
            os.write(write_end, message.encode(errors="replace"))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        out = handle.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return out


def test_unreadable_file_is_skipped_for_a_user_without_permission(tmp_path: Path) -> None:
    """As root chmod 000 blocks nothing (the corpus then expects a load); this checks the other branch as
    `nobody` when the suite runs as root, and directly otherwise."""
    from deepfake_lightning.data.images import BadImageError, load_rgb

    folder = Path(tempfile.mkdtemp(prefix="unreadable_"))
    try:
        folder.chmod(0o755)
        path = add_good_images(folder, 1, seed=0, prefix="secret")[0]
        load_rgb(path)  # readable before: the failure below is the permission, nothing else
        path.chmod(0)
        if os.geteuid() == 0:
            out = _load_as_nobody(path)
        else:
            try:
                load_rgb(path)
                out = "LOADED"
            except BadImageError as err:
                out = f"SKIP {err}"
        assert out.startswith("SKIP") and "Permission denied" in out and str(path) in out, out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- layouts --------------------------------------------------------------------------------------------


def test_empty_class_folder_warns_then_refuses_to_train(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = tmp_path / "data"
    add_good_images(root / "real", 10, seed=0)
    (root / "fake").mkdir()
    dm = _datamodule(root)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert "data train split of" in caplog.text and "has no fake images" in caplog.text
    assert "AUROC and AP are undefined on validation" in caplog.text
    with pytest.raises(
        DatasetLayoutError, match=r"split 'train' .* has no fake images: a detector cannot learn"
    ):
        dm.train_dataloader()


def test_validation_with_one_class_is_warned_clearly(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = split_tree(tmp_path / "data", per_class=2)
    shutil.rmtree(root / "valid" / "fake")
    dm = _datamodule(root)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    lines = [r.getMessage() for r in caplog.records if "valid split" in r.getMessage()]
    assert len(lines) == 1
    assert (
        "has no fake images (2 real, 0 fake)" in lines[0]
        and "AUROC and AP are undefined on validation" in lines[0]
    )
    assert len(dm.val_dataloader().dataset) == 2  # a warning, not an error: the run goes on


def test_missing_split_folder_is_named(tmp_path: Path) -> None:
    root = split_tree(tmp_path / "data", per_class=1, splits=("train", "valid"))
    with pytest.raises(
        DatasetLayoutError, match=r"has train/ valid/ but no test/: expected all of train/ valid/ test/"
    ):
        _datamodule(root).setup()
    with pytest.raises(DatasetLayoutError, match=r"split folder 'test/' and test.csv are both missing"):
        _datamodule(root, layout="faces140k").setup()


def test_empty_split_is_refused_when_its_loader_is_built(tmp_path: Path) -> None:
    root = split_tree(tmp_path / "data", per_class=1)
    for cls in ("real", "fake"):
        shutil.rmtree(root / "test" / cls)
        (root / "test" / cls).mkdir()
    dm = _datamodule(root)
    dm.setup()
    with pytest.raises(DatasetLayoutError, match=r"data split 'test' of .* is empty"):
        dm.test_dataloader()


def _140k(tmp_path: Path) -> tuple[Path, dict]:
    root = split_tree(tmp_path / "k140", per_class=2)
    return root, csv_rows_for(root)


def test_csv_missing_a_column(tmp_path: Path) -> None:
    root, rows = _140k(tmp_path)
    write_140k_csvs(root, rows, ["id", "label_str", "path"])
    with pytest.raises(
        DatasetLayoutError, match=r"train.csv: missing column\(s\) \['label'\]; expected label,path"
    ):
        _datamodule(root, layout="faces140k").setup()


def test_csv_with_an_unknown_label(tmp_path: Path) -> None:
    root, rows = _140k(tmp_path)
    rows["valid"][1]["label"] = "maybe"
    write_140k_csvs(root, rows, ["id", "label", "label_str", "path"])
    with pytest.raises(
        DatasetLayoutError, match=r"valid.csv:3: label='maybe'; expected 1 \(real\) or 0 \(fake\)"
    ):
        _datamodule(root, layout="faces140k").setup()


def test_csv_rows_pointing_at_missing_files_are_skipped_and_counted(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root, rows = _140k(tmp_path)
    rows["train"].append({"id": "ghost", "label": "0", "label_str": "fake", "path": "train/fake/ghost.jpg"})
    rows["train"].append({"id": "ghost2", "label": "1", "label_str": "real", "path": "train/real/gone.jpg"})
    write_140k_csvs(root, rows, ["id", "label", "label_str", "path"])
    dm = _datamodule(root, layout="faces140k")
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert "skipped 2 rows of" in caplog.text and "ghost.jpg" in caplog.text and "gone.jpg" in caplog.text
    assert dm.counts() == {split: {"real": 2, "fake": 2} for split in ("train", "valid", "test")}


# --- leakage --------------------------------------------------------------------------------------------


def test_same_image_in_two_splits_is_reported_as_leakage(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = split_tree(tmp_path / "data", per_class=3)
    shutil.copy(root / "train" / "fake" / "good_0.jpg", root / "test" / "fake" / "copy_of_train.jpg")
    shutil.copy(root / "train" / "real" / "good_1.jpg", root / "valid" / "real" / "dup_a.jpg")
    shutil.copy(root / "train" / "real" / "good_1.jpg", root / "test" / "real" / "dup_b.jpg")
    shutil.copy(
        root / "train" / "real" / "good_2.jpg", root / "train" / "fake" / "same_split.jpg"
    )  # not leakage
    (root / "train" / "fake" / "empty.jpg").write_bytes(b"")
    (root / "test" / "fake" / "empty.jpg").write_bytes(b"")  # identical, but unreadable: not reported
    dm = _datamodule(root, check_leakage=True)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert len(dm.leaks) == 2
    by_name = {Path(p).name: leak for leak in dm.leaks for paths in leak.paths.values() for p in paths}
    assert sorted(by_name["copy_of_train.jpg"].paths) == ["test", "train"]
    assert {s: [Path(p).name for p in ps] for s, ps in by_name["dup_a.jpg"].paths.items()} == {
        "train": ["good_1.jpg"],
        "valid": ["dup_a.jpg"],
        "test": ["dup_b.jpg"],
    }
    assert (
        "data leakage: 2 image(s) occur in more than one split" in caplog.text and "(5 files" in caplog.text
    )
    assert "copy_of_train.jpg" in caplog.text and "same_split.jpg" not in caplog.text


def test_leakage_check_is_off_when_asked_and_quiet_on_clean_data(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = split_tree(tmp_path / "data", per_class=3)
    shutil.copy(root / "train" / "fake" / "good_0.jpg", root / "test" / "fake" / "copy.jpg")
    dm = _datamodule(root, check_leakage=False)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.leaks == [] and "leakage" not in caplog.text
    (root / "test" / "fake" / "copy.jpg").unlink()
    assert find_cross_split_duplicates(_datamodule(root).build_index()) == []


def test_leakage_is_checked_by_default_except_for_faces140k(compose_cfg, tmp_path: Path) -> None:
    assert (
        compose_cfg("train", ["data=folder", f"data.root={tmp_path}"], tiny=False).data.check_leakage is True
    )
    assert compose_cfg("train", tiny=False).data.check_leakage is True  # synthetic
    assert compose_cfg("train", ["data=faces140k"], tiny=False).data.check_leakage is False
