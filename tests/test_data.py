"""Data: layouts, label mapping (1 = fake), bad images, PIL modes, augmentation switches, LFW."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lightning.data import BadImageError, DatasetLayoutError, DeepfakeDataModule, load_rgb
from deepfake_lightning.data.index import index_faces140k, index_folder
from deepfake_lightning.data.transforms import build_eval_transform, build_train_transform
from tests.conftest import make_140k_tree, make_folder_tree

NORMALIZE = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
ALL_OFF = {
    name: {"enabled": False} for name in ("geometric", "colour", "erasing", "grayscale", "jpeg", "blur")
}


def _datamodule(root: Path, **kwargs) -> DeepfakeDataModule:  # noqa: ANN003
    kwargs.setdefault("layout", "faces140k")
    return DeepfakeDataModule(str(root), image_size=32, batch_size=4, num_workers=0, **kwargs)


@pytest.mark.parametrize("with_csv", [True, False])
def test_faces140k_reads_csv_or_folders_with_fake_as_target_1(tmp_path: Path, with_csv: bool) -> None:
    root = make_140k_tree(tmp_path, per_class=3, with_csv=with_csv)
    index = index_faces140k(root)
    for split in ("train", "valid", "test"):
        assert len(index[split]) == 6
        for path, target in index[split]:
            assert target == (1 if "/fake/" in path else 0), path


def test_csv_label_is_flipped_not_copied(tmp_path: Path) -> None:
    """Kaggle's label 0 means fake; a known fake file must come out as target 1."""
    root = make_140k_tree(tmp_path, per_class=2)
    fake_file = str(root / "train" / "fake" / "fake000.jpg")
    assert dict(index_faces140k(root)["train"])[fake_file] == 1


def test_csv_contradicting_label_str_is_refused(tmp_path: Path) -> None:
    root = make_140k_tree(tmp_path, per_class=2)
    csv = tmp_path / "train.csv"
    csv.write_text(csv.read_text().replace(",1,real,", ",0,real,", 1))
    with pytest.raises(DatasetLayoutError, match=r"train.csv:2: label=0 contradicts label_str='real'"):
        index_faces140k(root)


def test_missing_root_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetLayoutError, match=r"real_vs_fake/real-vs-fake/\{train,valid,test\}/\{real,fake\}"
    ):
        index_faces140k(tmp_path / "nowhere")


def test_split_counts_are_logged_and_differences_from_published_warned(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = make_140k_tree(tmp_path, per_class=2)
    with caplog.at_level(logging.INFO):
        _datamodule(root).setup()
    assert "data train: 2 real, 2 fake" in caplog.text
    assert "the published split has 100000" in caplog.text


def test_folder_layout_stratified_and_seeded(tmp_path: Path) -> None:
    root = make_folder_tree(tmp_path, per_class=10)
    first = index_folder(root, (0.6, 0.2, 0.2), seed=1)
    assert first == index_folder(root, (0.6, 0.2, 0.2), seed=1)
    assert first != index_folder(root, (0.6, 0.2, 0.2), seed=2)
    for split, n in (("train", 6), ("valid", 2), ("test", 2)):
        assert sum(t for _, t in first[split]) == n and len(first[split]) == 2 * n
    everything = index_folder(root, use_all_for_test=True)
    assert len(everything["test"]) == 20 and not everything["train"]


def test_folder_layout_with_explicit_splits(tmp_path: Path) -> None:
    for split in ("train", "valid", "test"):
        make_folder_tree(tmp_path / split, per_class=2)
    index = index_folder(tmp_path)
    assert {split: len(samples) for split, samples in index.items()} == {"train": 4, "valid": 4, "test": 4}


def test_bad_image_skipped_counted_and_good_images_kept(tmp_path: Path) -> None:
    root = make_140k_tree(tmp_path, per_class=3, with_csv=False)
    (root / "test" / "fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    dm = _datamodule(root, augment=ALL_OFF)
    batches = list(dm.test_dataloader())
    assert [Path(p).name for b in batches for p in b["skipped"]] == ["broken.jpg"]
    assert sum(len(b["path"]) for b in batches) == 6  # every good image is still there


def test_bad_image_raise_names_the_file(tmp_path: Path) -> None:
    root = make_140k_tree(tmp_path, per_class=1, with_csv=False)
    (root / "test" / "real" / "zero.jpg").write_bytes(b"")
    dm = _datamodule(root, on_bad_image="raise")
    with pytest.raises(BadImageError, match=r"zero\.jpg: .*empty"):
        list(dm.test_dataloader())


def test_verify_pass_drops_bad_files_before_training(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = make_140k_tree(tmp_path, per_class=2, with_csv=False)
    (root / "valid" / "real" / "text.jpg").write_text("hello")
    dm = _datamodule(root, verify=True)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.verify_skipped == [str(root / "valid" / "real" / "text.jpg")]
    assert "skipped 1 unreadable image" in caplog.text
    assert dm.counts()["valid"] == {"real": 2, "fake": 2}


@pytest.mark.parametrize(
    "mode,maker",
    [
        ("L", lambda: Image.new("L", (20, 10), 128)),
        ("RGBA", lambda: Image.new("RGBA", (20, 10), (255, 0, 0, 128))),
        ("P", lambda: Image.new("RGB", (20, 10), (0, 255, 0)).convert("P")),
        ("CMYK", lambda: Image.new("CMYK", (20, 10), (0, 255, 0, 0))),
        ("I;16", lambda: Image.fromarray(np.full((10, 20), 65535, dtype=np.uint16))),
    ],
)
def test_any_pil_mode_becomes_rgb(tmp_path: Path, mode: str, maker) -> None:  # noqa: ANN001
    image = maker()
    path = tmp_path / f"img_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    array = load_rgb(path)
    assert array.shape == (10, 20, 3) and array.dtype == np.uint8
    if mode == "I;16":
        assert array.min() == 255  # 16-bit white stays white, not clipped garbage


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (30, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").shape == (30, 10, 3)


def test_eval_transform_is_deterministic_and_sized() -> None:
    image = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    for preprocess in ("resize", "center_crop"):
        transform = build_eval_transform(32, preprocess, NORMALIZE)
        first, second = transform(image), transform(image)
        assert first.shape == (3, 32, 32) and torch.equal(first, second)


def test_augmentation_switches(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    off = build_train_transform(32, "resize", ALL_OFF, NORMALIZE)
    assert torch.equal(off(image), build_eval_transform(32, "resize", NORMALIZE)(image))
    grey = build_train_transform(
        32, "resize", {**ALL_OFF, "grayscale": {"enabled": True, "p": 1.0}}, NORMALIZE
    )
    out = grey(image)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    erase = {
        **ALL_OFF,
        "erasing": {"enabled": True, "p": 1.0, "num_holes_range": [1, 1], "hole_size_range": [0.5, 0.5]},
    }
    erased = build_train_transform(32, "resize", erase, {"mean": [0, 0, 0], "std": [1, 1, 1]})(image)
    assert (erased == 0).all(dim=0).sum() >= 16 * 16
    with pytest.raises(ValueError, match=r"^data.augment.mixup=\{'enabled': True\}: unknown key; "):
        build_train_transform(32, "resize", {"mixup": {"enabled": True}}, NORMALIZE)


def test_every_augmentation_group_runs(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    augment = OmegaConf.to_container(
        OmegaConf.load(Path(__file__).parents[1] / "conf/data/_base.yaml").augment
    )
    for group in augment.values():
        if isinstance(group, dict):
            group["enabled"] = True
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert build_train_transform(32, "resize", augment, NORMALIZE)(image).shape == (3, 32, 32)


def test_lfw_faceswap_folder(lfw_dir: Path) -> None:
    dm = DeepfakeDataModule(
        str(lfw_dir), layout="folder", image_size=64, batch_size=8, num_workers=0, preprocess="center_crop"
    )
    counts = dm.counts()
    assert counts["train"] == {"real": 800, "fake": 800}
    assert counts["valid"] == {"real": 100, "fake": 100} and counts["test"] == {"real": 100, "fake": 100}
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (8, 3, 64, 64)
    for path, target in zip(batch["path"], batch["target"].tolist(), strict=True):
        assert target == (1.0 if Path(path).name.startswith("fake_") else 0.0)
