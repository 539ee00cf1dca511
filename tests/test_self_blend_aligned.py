"""data.fakes=self_blend on aligned face crops (data.face_crop.enabled=true): the blend is made inside the crop the
detector sees, its mask from the crop's own landmarks (the setup detection mapped through the alignment matrix),
the face-box ellipse where a photo has no face; seeded per (seed, epoch, index); a tiny training run on the shared
LFW set whose bundle records the face pipeline. Real LFW photos and the CenterFace model (`make weights`)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.dataset import ImageDataset
from deepfake_lightning.data.epoch_sampler import EpochSampler
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.self_blend import SELF_BLEND_SUFFIX, SelfBlendDataset, self_blend_dataset
from deepfake_lightning.faces import build_detector, centerface_model
from deepfake_lightning.faces.alignment import template_points
from deepfake_lightning.utils.config_schema import ConfigError, DataSettings
from tests.conftest import LFW_DIR, TINY_TRAINER
from tests.fixtures_inference import compose_entry

SIZE, SCALE = 112, 1.0  # the crop: the dfdc_faces_aligned row's scale, a small side
FACE_CROP = {
    "enabled": True,
    "detector": "centerface",
    "alignment": "landmarks",
    "scale": SCALE,
    "size": SIZE,
}


@pytest.fixture(autouse=True)
def _detection_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any detection a test does not direct to its own cache_dir stays here, not in the user's cache."""
    monkeypatch.setenv("DFL_CACHE_DIR", str(tmp_path / "cache"))


def _need_lfw() -> None:
    if not (LFW_DIR / "real").is_dir():
        pytest.skip(
            f"shared LFW face-swap set not found at {LFW_DIR} (it lives in ../shared beside the repo)"
        )


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/{real,fake}: 6 LFW photos per class (250 px, a small face in the centre: not crops yet); among the
    reals also a tight cut of one face (its aligned crop reaches outside it: black padding) and a noise image
    without a face."""
    _need_lfw()
    centerface_model.fetch_centerface()
    root = tmp_path_factory.mktemp("photos")
    for cls in ("real", "fake"):
        (root / cls).mkdir()
        for path in sorted((LFW_DIR / cls).glob("*.jpg"))[:6]:
            shutil.copy(path, root / cls / path.name)
    tight = load_rgb(sorted((LFW_DIR / "real").glob("*.jpg"))[0])[70:180, 70:180]  # its crop reaches outside
    Image.fromarray(np.ascontiguousarray(tight)).save(root / "real" / "tight_face.png")
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "real" / "zz_noise.png")
    return root


def _module(root: Path, cache: Path, fakes: str = "self_blend") -> DeepfakeDataModule:
    return DeepfakeDataModule(
        str(root), layout="folder", image_size=32, batch_size=4, num_workers=0, check_leakage=False,
        split_ratios=(0.6, 0.2, 0.2), fakes=fakes, self_blend={"elastic_p": 0.0},
        face_crop={**FACE_CROP, "cache_dir": str(cache)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def faces_module(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> DeepfakeDataModule:
    module = _module(photo_folder, tmp_path_factory.mktemp("cache"))
    module.setup()  # detects (data.face_crop), once
    return module


def _every_real(module: DeepfakeDataModule) -> list[tuple[str, int]]:
    assert module.index is not None
    return [(path, target) for samples in module.index.values() for path, target in samples if target == 0]


@pytest.fixture(scope="module")
def blended(faces_module: DeepfakeDataModule) -> SelfBlendDataset:
    """Every real of the folder (the noise image included, whichever split it fell in) as a blended split of
    the module's aligned crops: what `_dataset` builds for train and valid."""
    return self_blend_dataset(
        _every_real(faces_module), "train", "photos", lambda image, seed=None: image, faces_module.self_blend,
        cropper=faces_module.face_cropper,
    )  # fmt: skip


def test_the_combination_is_accepted_and_haar_landmark_masks_are_refused() -> None:
    """Refused until aligned crops were blended from their own landmarks; Haar has no landmarks to give."""
    values = {"root": "x", "layout": "folder", "fakes": "self_blend", "face_crop": {"enabled": True}}
    DataSettings.check(values)
    DataSettings.check({**values, "face_crop": {"enabled": True, "alignment": "box", "scale": 1.0}})
    haar = {**values, "face_crop": {"enabled": True, "detector": "haar"}}
    with pytest.raises(ConfigError) as err:
        DataSettings.check(haar)
    assert str(err.value).startswith(
        "data.face_crop.detector=haar with data.fakes=self_blend: the Haar detector gives no landmarks"
    )
    assert "data.self_blend.mask=face_box" in str(err.value)
    DataSettings.check({**haar, "self_blend": {"mask": "face_box"}})  # the ellipse needs no landmarks


def test_mapped_landmarks_land_on_the_crop_features(blended: SelfBlendDataset) -> None:
    """In crop pixels: near the alignment template, eyes in the upper half, and where CenterFace itself finds
    them when run on the crop (a landmark left in photo pixels would be tens of px off)."""
    detector, template = build_detector("centerface"), template_points(SIZE, SCALE)
    dataset, checked = blended, 0
    for path, marks in dataset.landmarks.items():
        assert marks.shape == (5, 2)
        np.testing.assert_allclose(marks, template, atol=0.07 * SIZE)
        assert (marks[:2, 1] < SIZE / 2).all() and (marks[3:, 1] > SIZE / 2).all()  # eyes up, mouth down
        assert marks[0, 0] < marks[2, 0] < marks[1, 0]  # left eye, nose, right eye
        crop = dataset.crop(path, load_rgb(path))
        assert crop.shape == (SIZE, SIZE, 3)
        found = max(detector.detect(crop), key=lambda face: face.area)
        np.testing.assert_allclose(found.landmarks, marks, atol=0.06 * SIZE)
        checked += 1
    assert checked == 7  # every face; not the noise image


def test_a_blended_crop_differs_from_the_real_crop_only_inside_the_mapped_mask(
    blended: SelfBlendDataset,
) -> None:
    dataset, seen = blended, {"face": 0, "padded": 0, "ellipse": 0}
    for i, (path, _) in enumerate(dataset.samples[: dataset.n_real]):
        photo = load_rgb(path)
        real = dataset.crop(path, photo)  # the aligned crop (the photo itself without a face)
        marks, reflected = dataset.landmarks.get(path), dataset.cropper.reflected(path, photo)
        fake = dataset._load(dataset.n_real + i, path, augment_seed=1234 + i)
        expected, mask = dataset.blender(real, 1234 + i, marks, reflected)
        np.testing.assert_array_equal(fake, expected)  # blended inside the crop, from its landmarks
        assert mask.shape == real.shape[:2]
        outside = mask == 0
        assert outside.mean() > 0.05
        np.testing.assert_array_equal(fake[outside], real[outside])  # bit for bit
        assert (fake != real)[mask >= mask.max() / 2].any()
        if "noise" in path:  # no face: used whole, the face-box ellipse in the whole photo
            assert marks is None and reflected is None and real.shape == (120, 160, 3)
            seen["ellipse"] += 1
            continue
        seen["face"] += 1
        assert real.shape == (SIZE, SIZE, 3)
        for x, y in np.round(marks[:3]).astype(int):  # eyes and nose inside the (unwobbled) hull
            assert mask[y, x] > 0, (path, x, y)
        assert not np.array_equal(mask, dataset.blender(real, 1234 + i)[1])  # not the ellipse
        padding = ~reflected[1]  # crop pixels not (wholly) from the photo: black in every crop
        if padding.any():
            seen["padded"] += 1
            assert (mask[padding] == 0).all() and (real[padding] < 255).all()
            np.testing.assert_array_equal(reflected[0][~padding], real[~padding])
            naive = dataset.blender(real, 1234 + i, marks)[1]
            assert (naive[padding] > 0).any(), "the mask would have covered the padding"
    assert seen == {"face": 7, "padded": 1, "ellipse": 1}


def test_the_ellipse_fallback_is_counted_and_logged(faces_module: DeepfakeDataModule, caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.data.self_blend"):
        dataset = self_blend_dataset(
            _every_real(faces_module), "train", "photos", lambda image, seed=None: image, {},
            cropper=faces_module.face_cropper,
        )  # fmt: skip
    assert len(dataset.landmarks) == 7 and dataset.n_real == 8
    assert (
        "train 7 of 8 reals with a face (data.face_crop, mapped into the aligned crop); 1 without one use the "
        "face-box ellipse" in caplog.text
    )
    assert faces_module.face_counts["no_face"] == 1  # data.face_crop's own count of the noise image


def test_reals_are_the_crops_a_supervised_run_serves(photo_folder: Path, tmp_path: Path) -> None:
    """The detector's input pipeline is otherwise identical: a blended split's reals are the same aligned,
    transformed tensors the same module serves with data.fakes=dataset."""
    blended = _module(photo_folder, tmp_path)._dataset("train", train=True)
    plain = _module(photo_folder, tmp_path, fakes="dataset")._dataset("train", train=True)
    assert type(plain) is ImageDataset and plain.crop is not None
    position = {path: i for i, (path, _) in enumerate(plain.samples)}
    for i in range(blended.n_real):
        item = blended[(i, 77 + i)]
        assert torch.equal(item["image"], plain[(position[item["path"]], 77 + i)]["image"])
    fake = blended[(blended.n_real, 5)]
    assert fake["path"].endswith(SELF_BLEND_SUFFIX) and fake["target"] == 1


def test_blends_are_a_function_of_seed_epoch_and_index(photo_folder: Path, tmp_path: Path) -> None:
    def blends(epoch: int) -> dict[int, torch.Tensor]:
        dataset = _module(photo_folder, tmp_path)._dataset("train", train=True)
        keys = list(EpochSampler(len(dataset), seed=42, epoch=epoch))
        return {i: dataset[(i, s)]["image"] for i, s in keys if i >= dataset.n_real}

    epoch0, again, epoch1 = blends(0), blends(0), blends(1)
    assert epoch0.keys() == epoch1.keys() and len(epoch0) >= 3
    assert all(torch.equal(epoch0[i], again[i]) for i in epoch0)  # a fresh module: a resumed run
    assert all(not torch.equal(epoch0[i], epoch1[i]) for i in epoch0)


def test_training_on_lfw_reals_records_the_face_pipeline(tmp_path: Path) -> None:
    """`train +experiment=lfw_faceswap data.fakes=self_blend data.face_crop.enabled=true` at a tiny size: the
    checkpoint's bundle records the face pipeline, so eval and inference crop as training did."""
    _need_lfw()
    centerface_model.fetch_centerface()
    from deepfake_lightning.inference import Detector
    from deepfake_lightning.train import train

    run = tmp_path / "run"
    overrides = [
        "+experiment=lfw_faceswap",
        *TINY_TRAINER,
        f"data.root={LFW_DIR}",
        "data.max_per_class=10",
        "data.fakes=self_blend",
        "data.face_crop.enabled=true",
        "data.face_crop.scale=1.0",
        "data.face_crop.size=64",
        f"data.face_crop.cache_dir={tmp_path / 'cache'}",
    ]
    results = train(compose_entry("train", overrides, run))
    assert results["status"] == "ok"
    info = json.loads((run / "model_info.json").read_text())
    assert info["data"]["train"]["self_blended"] == info["data"]["train"]["real"] > 0
    assert info["face_crop"]["images"] == 20 and info["face_crop"]["pipeline"]["size"] == 64
    described = Detector.load(run / "checkpoints" / "best.ckpt").describe()
    assert described["face_pipeline_source"] == "bundle"
    pipeline = described["face_pipeline"]
    assert (pipeline["detector"], pipeline["alignment"], pipeline["scale"], pipeline["size"]) == (
        "centerface",
        "landmarks",
        1.0,
        64,
    )
