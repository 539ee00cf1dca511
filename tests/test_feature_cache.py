"""The feature cache: entries are reused when nothing changed and computed again when any part of the key changes
(the image's content, the preprocessing, the encoder's weights, architecture or cut, the augmented views); the
store survives damaged and interrupted shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_lightning.data import DeepfakeDataModule
from deepfake_lightning.data.cached_features import FeatureCache
from deepfake_lightning.data.feature_cache import FeatureStore
from deepfake_lightning.models import build_detector
from deepfake_lightning.utils.config_schema import ConfigError
from deepfake_lightning.utils.config_validation import validate_config
from tests.conftest import make_folder_tree, write_image

PER_CLASS = 5  # 10 images: 8 train, 1 valid, 1 test
HEAD = {"hidden": [], "dropout": [0.0]}


def _datamodule(root: Path, **overrides) -> DeepfakeDataModule:
    args = {"image_size": 32, "batch_size": 4, "num_workers": 0, "check_leakage": False, **overrides}
    return DeepfakeDataModule(root=str(root), layout="folder", split_ratios=[0.8, 0.1, 0.1], **args)


def _net(tune_last_k: int | None = None, attention: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = {"name": "timm:test_resnet", "tune": "frozen"}
    if tune_last_k is not None:
        backbone = {"name": "timm:test_resnet", "tune": "last_k", "tune_last_k": tune_last_k}
    return build_detector(backbone, {"enabled": attention}, HEAD)


def _build(cache_dir: Path, datamodule: DeepfakeDataModule, net: torch.nn.Module, **cache_args) -> dict:
    """Build the train split's cached dataset; returns its stats (hits, computed, ...)."""
    cache = FeatureCache(cache_dir, **cache_args)
    cache.build(datamodule, "train", net)
    return cache.stats["splits"]["train"]


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return make_folder_tree(tmp_path / "faces", per_class=PER_CLASS)


def test_a_second_build_is_all_hits(tmp_path: Path, data_root: Path) -> None:
    first = _build(tmp_path / "cache", _datamodule(data_root), _net())
    assert (first["entries"], first["hits"], first["computed"]) == (8, 0, 8)
    assert first["entry_shape"] == [96]  # pooled test_resnet features
    second = _build(tmp_path / "cache", _datamodule(data_root), _net())
    assert (second["hits"], second["computed"]) == (8, 0)
    assert second["store"] == first["store"]
    meta = json.loads((Path(first["store"]) / "meta.json").read_text())
    assert meta["preprocessing"]["image_size"] == 32 and meta["encoder"]["cut"] == {
        "kind": "pooled",
        "cut": 0,
    }


def test_an_edited_image_is_computed_again(tmp_path: Path, data_root: Path) -> None:
    datamodule = _datamodule(data_root)
    _build(tmp_path / "cache", datamodule, _net())
    write_image(Path(datamodule.index["train"][0][0]), seed=999)  # same path, new content
    again = _build(tmp_path / "cache", _datamodule(data_root), _net())
    assert (again["hits"], again["computed"]) == (7, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"image_size": 48},
        {"preprocess": "center_crop"},
        {"normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}},
        {"reencode_jpeg_quality": 80},
    ],
)
def test_changed_preprocessing_misses(tmp_path: Path, data_root: Path, change: dict) -> None:
    first = _build(tmp_path / "cache", _datamodule(data_root), _net())
    changed = _build(tmp_path / "cache", _datamodule(data_root, **change), _net())
    assert (changed["hits"], changed["computed"]) == (0, 8)
    assert changed["store"] != first["store"]


def test_changed_encoder_weights_architecture_or_cut_miss(tmp_path: Path, data_root: Path) -> None:
    cache = tmp_path / "cache"
    stores = {_build(cache, _datamodule(data_root), _net())["store"]}
    perturbed = _net()
    with torch.no_grad():
        perturbed.backbone.features.conv1[0].weight.add_(1e-3)  # one frozen tensor
    for net in (perturbed, _net(attention=True), _net(tune_last_k=1), _net(tune_last_k=2)):
        stats = _build(cache, _datamodule(data_root), net)
        assert (stats["hits"], stats["computed"]) == (0, 8)
        stores.add(stats["store"])
    assert len(stores) == 5
    trained_head = _net()
    with torch.no_grad():
        trained_head.head.mlp[-1].weight.add_(1.0)  # after the cut: the cached values are still valid
    assert _build(cache, _datamodule(data_root), trained_head)["hits"] == 8


def test_augmented_views_are_cached_per_view(tmp_path: Path, data_root: Path) -> None:
    cache = tmp_path / "cache"
    augment = {
        "geometric": {
            "enabled": True,
            "hflip_p": 0.5,
            "rotate_limit": 20,
            "scale": [0.8, 1.2],
            "translate": 0.1,
            "affine_p": 1.0,
            "perspective_scale": 0.0,
            "perspective_p": 0.0,
        }
    }
    plain = _build(cache, _datamodule(data_root, augment=augment), _net())
    two = _build(cache, _datamodule(data_root, augment=augment), _net(), views=2)
    assert (two["entries"], two["computed"]) == (16, 16) and two["store"] != plain["store"]
    three = _build(cache, _datamodule(data_root, augment=augment), _net(), views=3)
    assert (three["hits"], three["computed"]) == (16, 8)  # only view 2 is new
    reseeded = _build(cache, _datamodule(data_root, augment=augment), _net(), views=2, views_seed=1)
    assert reseeded["computed"] == 16
    other = {**augment, "geometric": {**augment["geometric"], "rotate_limit": 5}}
    assert _build(cache, _datamodule(data_root, augment=other), _net(), views=2)["computed"] == 16

    feature_cache = FeatureCache(cache, views=3)
    dataset = feature_cache.build(_datamodule(data_root, augment=augment), "train", _net())
    views = [dataset[(0, seed)]["features"] for seed in range(3)]
    assert not torch.equal(views[0], views[1]) and not torch.equal(
        views[1], views[2]
    )  # augmented differently
    assert torch.equal(dataset[(0, 4)]["features"], views[1])  # the sampler's seed picks the view


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path, data_root: Path) -> None:
    datamodule = _datamodule(data_root)
    datamodule.setup()
    bad = Path(datamodule.index["train"][0][0])
    bad.write_bytes(b"not an image")
    cache = FeatureCache(tmp_path / "cache")
    dataset = cache.build(datamodule, "train", _net())
    assert len(dataset) == 7
    assert cache.stats["splits"]["train"]["skipped"] == [str(bad)]


def test_store_ignores_damaged_and_unfinished_shards(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = {"encoder": "e", "preprocessing": "p"}
    store = FeatureStore(tmp_path, key)
    store.add(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(store.get("b"), [3, 4, 5])
    (store.dir / "unfinished.npy").write_bytes(b"half")  # values written, names never: invisible
    (store.dir / "damaged.npy").write_bytes(b"garbage")
    (store.dir / "damaged.json").write_text(json.dumps(["c"]))
    reopened = FeatureStore(tmp_path, key)
    assert "damaged" in caplog.text and "ignored shard" in caplog.text
    assert len(reopened) == 2 and reopened.missing(["a", "c", "c"]) == ["c"]
    assert FeatureStore(tmp_path, {**key, "preprocessing": "q"}).dir != store.dir


def test_feature_cache_settings_are_checked_at_start_up(compose_cfg, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="feature_cache.enabled=true: model.backbone.tune=all has no frozen part"
    ):
        validate_config(compose_cfg("train", ["feature_cache.enabled=true"]))
    recipe = ["+recipe=linear_probe"]
    with pytest.raises(ConfigError, match="feature_cache.views=2: cached views are augmented on the CPU"):
        validate_config(compose_cfg("train", [*recipe, "feature_cache.views=2", "data.augment_on=device"]))
    with pytest.raises(
        ConfigError, match="feature_cache.enabled=true: data.fakes=self_blend makes new fakes"
    ):
        validate_config(compose_cfg("train", [*recipe, "data.fakes=self_blend"]))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="feature_cache.dir=.*a_file/cache.*: cannot create it"):
        validate_config(compose_cfg("train", [*recipe, f"feature_cache.dir={blocker}/cache"]))
    with pytest.raises(ConfigError, match="feature_cache.views=-1: expected an integer in 0..64"):
        validate_config(compose_cfg("train", [*recipe, "feature_cache.views=-1"]))
