"""data.fakes=self_blend: fakes blended from reals only inside the mask, seeded per (seed, epoch, index), reals and
the test split untouched, labels and counts, landmark masks with the face box as fallback, a clear error without
reals or without the CenterFace model, a tiny training run."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.dataset import ImageDataset
from deepfake_lightning.data.epoch_sampler import EpochSampler
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.index import DatasetLayoutError
from deepfake_lightning.data.self_blend import (
    SELF_BLEND_SUFFIX,
    SelfBlendDataset,
    SelfBlender,
    self_blend_dataset,
)
from deepfake_lightning.train import train
from deepfake_lightning.utils.config_schema import ConfigError, DataSettings
from tests.conftest import make_folder_tree, write_image

LANDMARKS = np.array(
    [[34.0, 40.0], [62.0, 40.0], [48.0, 55.0], [38.0, 68.0], [58.0, 68.0]]
)  # in a 96-px face


@pytest.fixture(autouse=True)
def _detection_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data.self_blend.mask=landmarks (the default) caches CenterFace detections: here, not in the user's cache."""
    monkeypatch.setenv("DFL_CACHE_DIR", str(tmp_path / "cache"))


def _face(size: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth structure plus noise, so every colour and frequency perturbation changes pixels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 210, size, dtype=np.float32)
    base = np.stack(
        [ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), np.full((size, size), 128)], 2
    )
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _module(root: Path, **kwargs) -> DeepfakeDataModule:  # noqa: ANN003
    settings = {"image_size": 32, "batch_size": 4, "num_workers": 0, "check_leakage": False, **kwargs}
    return DeepfakeDataModule(str(root), layout="folder", **settings)


@pytest.mark.parametrize("landmarks", [None, LANDMARKS], ids=["face_box", "landmarks"])
def test_blend_differs_from_the_real_only_inside_the_mask(landmarks: np.ndarray | None) -> None:
    real, blender = _face(), SelfBlender()
    for seed in range(12):
        blended, mask = blender(real, seed, landmarks)
        assert blended.shape == real.shape and blended.dtype == np.uint8
        assert mask.shape == real.shape[:2] and mask.min() == 0.0 and 0 < mask.max() <= 1.0
        outside = mask == 0
        assert outside.mean() > 0.1, "the face mask must leave the background out"
        np.testing.assert_array_equal(blended[outside], real[outside])  # bit for bit
        assert (blended != real)[mask >= mask.max() / 2].any(), (
            f"seed {seed}: nothing changed inside the mask"
        )
        assert np.isclose(mask.max(), blender.blend_ratios, atol=1e-6).any()  # peak = a drawn blend ratio


def test_landmark_mask_covers_the_face_the_points_span() -> None:
    _, mask = SelfBlender(elastic_p=0.0)(_face(), seed=3, landmarks=LANDMARKS)
    for x, y in LANDMARKS.astype(int):
        assert mask[y, x] > 0, (x, y)
    assert mask[25, 48] > 0 and mask[80, 48] > 0, "grown to forehead and chin"
    assert mask[0, 0] == mask[95, 95] == mask[48, 2] == 0


def test_blend_is_deterministic_per_seed_and_in_any_process() -> None:
    real, blender = _face(), SelfBlender()
    first, mask = blender(real, 7)
    again, mask_again = pickle.loads(pickle.dumps(blender))(real, 7)  # as a DataLoader worker has it
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(mask, mask_again)
    others = [blender(real, seed)[0] for seed in (8, 9, 10)]
    assert all(not np.array_equal(first, other) for other in others)


def test_train_fakes_are_a_function_of_seed_epoch_and_index(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """What `EpochSampler` hands the dataset per (run seed, epoch) picks the blend: the same in a fresh data
    module (a resumed run), different in the next epoch."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    root = make_folder_tree(tmp_path / "faces", per_class=10)

    def blends(epoch: int) -> dict[int, torch.Tensor]:
        dataset = _module(root, fakes="self_blend")._dataset("train", train=True)
        keys = list(EpochSampler(len(dataset), seed=42, epoch=epoch))
        return {i: dataset[(i, s)]["image"] for i, s in keys if i >= dataset.n_real}

    epoch0, epoch0_again, epoch1 = blends(0), blends(0), blends(1)
    assert epoch0.keys() == epoch1.keys() and len(epoch0) == 8  # 80% of 10 reals, one blend each
    assert all(torch.equal(epoch0[i], epoch0_again[i]) for i in epoch0)
    assert all(not torch.equal(epoch0[i], epoch1[i]) for i in epoch0)


@pytest.mark.parametrize("split", ["train", "valid"])
def test_reals_pass_through_exactly_as_without_the_option(tmp_path: Path, split: str) -> None:
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    train = split == "train"
    blended = _module(root, fakes="self_blend")._dataset(split, train=train)
    plain = _module(root)._dataset(split, train=train)
    assert isinstance(blended, SelfBlendDataset) and type(plain) is ImageDataset
    position = {path: i for i, (path, _) in enumerate(plain.samples)}
    for i in range(blended.n_real):
        key = (i, 1234 + i) if train else i
        item = blended[key]
        j = position[item["path"]]
        reference = plain[(j, 1234 + i) if train else j]
        assert item["target"] == reference["target"] == 0
        assert torch.equal(item["image"], reference["image"])


def test_labels_counts_and_the_test_split(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    dm = _module(root, fakes="self_blend")
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.data.self_blend"):
        counts = dm.counts()
    assert counts["train"] == {"real": 8, "fake": 8, "self_blended": 8, "dataset_fakes_unused": 8}
    assert counts["valid"] == {"real": 1, "fake": 1, "self_blended": 1, "dataset_fakes_unused": 1}
    assert counts["test"] == {"real": 1, "fake": 1}
    assert "train 8 real + 8 self-blended (the set's 8 train fakes unused)" in caplog.text
    assert "test 1 real + 1 fake, the set's own" in caplog.text
    for split in ("train", "valid"):
        dataset = dm._dataset(split, train=split == "train")
        items = [dataset[i] for i in range(len(dataset))]
        assert len(items) == 2 * counts[split]["real"]
        for item in items:
            marked = item["path"].endswith(SELF_BLEND_SUFFIX)
            assert item["target"] == float(marked)
            assert (
                Path(item["path"].removesuffix(SELF_BLEND_SUFFIX)).parent.name == "real"
            )  # made from a real
        assert sum(item["target"] for item in items) == counts[split]["self_blended"]
    test = dm._dataset("test", train=False)
    assert type(test) is ImageDataset and test.samples == dm.index["test"]  # the set's own real fakes
    assert sorted(t for _, t in test.samples) == [0, 1]


def test_validation_fakes_are_fixed_or_the_sets_own(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    root = make_folder_tree(tmp_path / "faces", per_class=20)
    valid = _module(root, fakes="self_blend")._dataset("valid", train=False)
    again = _module(root, fakes="self_blend")._dataset("valid", train=False)
    fake = valid.n_real
    assert torch.equal(valid[fake]["image"], again[fake]["image"])  # the same fakes every epoch and run
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.data.self_blend"):
        dm = _module(root, fakes="self_blend", self_blend={"val_fakes": "dataset"})
        own = dm._dataset("valid", train=False)
    assert type(own) is ImageDataset and own.samples == dm.index["valid"]
    assert "valid 2 real + 2 fake, the set's own (data.self_blend.val_fakes=dataset)" in caplog.text
    assert dm.counts()["valid"] == {"real": 2, "fake": 2}


def test_landmark_masks_from_centerface_and_the_face_box_where_none_is_found(
    lfw_dir: Path, tmp_path: Path, caplog
) -> None:  # noqa: ANN001
    faces = [str(p) for p in sorted((lfw_dir / "real").glob("*.jpg"))[:3]]
    noise = str(write_image(tmp_path / "noise.jpg", seed=1, size=96))
    reals = [(path, 0) for path in [*faces, noise]]
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.data.self_blend"):
        dataset = self_blend_dataset(reals, "train", "lfw", lambda image, seed=None: image, {})
    assert sorted(dataset.landmarks) == sorted(faces)  # the noise image has no face: the face box
    assert (
        "train 3 of 4 reals with a face (CenterFace); 1 without one use the face-box ellipse" in caplog.text
    )
    for i, (path, _) in enumerate(reals):
        blended = dataset._load(dataset.n_real + i, path, augment_seed=99)
        real = load_rgb(path)
        np.testing.assert_array_equal(blended, dataset.blender(real, 99, dataset.landmarks.get(path))[0])
        if path in dataset.landmarks:  # the landmark hull, not the ellipse
            assert not np.array_equal(blended, dataset.blender(real, 99)[0])
    plain = self_blend_dataset(reals, "train", "lfw", lambda image, seed=None: image, {"mask": "face_box"})
    assert plain.landmarks == {}


def test_landmarks_without_the_centerface_model_say_what_to_do(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    expected = r"data.self_blend.mask=landmarks: .*CenterFace model not found; .*\(or set data.self_blend.mask=face_box\)"
    with pytest.raises(ConfigError, match=expected):
        _module(root, fakes="self_blend")._dataset("train", train=True)


def test_a_set_without_reals_is_refused_at_setup(tmp_path: Path) -> None:
    for i in range(6):
        write_image(tmp_path / "fakes_only" / "fake" / f"f{i}.jpg", seed=i)
    with pytest.raises(
        DatasetLayoutError, match=r"data.fakes=self_blend: the train split of .*fakes_only has no real"
    ):
        _module(tmp_path / "fakes_only", fakes="self_blend").setup()


def test_a_reals_only_folder_trains(tmp_path: Path) -> None:
    """Self-blending needs no fakes at all: a folder of real faces gives a trainable split."""
    for i in range(10):
        write_image(tmp_path / "reals" / "real" / f"r{i}.jpg", seed=i)
    dataset = _module(tmp_path / "reals", fakes="self_blend")._dataset("train", train=True)
    assert sorted(t for _, t in dataset.samples) == [0] * 8 + [1] * 8


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fakes": "blend"}, "data.fakes='blend': expected dataset or self_blend"),
        ({"self_blend": {"mask": "hull"}}, "data.self_blend.mask='hull': expected landmarks or face_box"),
        (
            {"self_blend": {"val_fakes": "test"}},
            "data.self_blend.val_fakes='test': expected self_blend or dataset",
        ),
        (
            {"self_blend": {"face_box": [0.8, 0.1, 0.2, 0.9]}},
            "data.self_blend.face_box=[0.8, 0.1, 0.2, 0.9]: expected",
        ),
        (
            {"self_blend": {"blend_ratios": [0.0]}},
            "data.self_blend.blend_ratios=[0.0]: expected a non-empty list",
        ),
        (
            {"self_blend": {"elastic": 0.5}},
            "data.self_blend.elastic=0.5: unknown key; did you mean elastic_p?",
        ),
    ],
)
def test_bad_settings_are_one_line(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        DataSettings.check({"root": "x", **settings})
    assert str(err.value).startswith(message)


def test_tiny_training_run_with_debug_fdr(compose_cfg, tmp_path: Path) -> None:  # noqa: ANN001
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    cfg = compose_cfg(
        "train",
        ["debug=fdr", "data=folder", f"data.root={root}", "data.fakes=self_blend"],
    )
    results = train(cfg)
    assert results["status"] == "ok" and results["test"]["n"] == 2
    run = Path(cfg.paths.output_dir)
    counts = json.loads((run / "model_info.json").read_text())["data"]
    assert counts["train"]["self_blended"] == 8 and counts["test"] == {"real": 1, "fake": 1}
    data = OmegaConf.load(run / "config.yaml").data
    assert data.fakes == "self_blend" and data.self_blend.val_fakes == "self_blend"  # what validation held
