"""The encoder recipes end to end: a `debug=fdr` run of each, training on cached features equals training live,
and a model trained on cached features gives the same logits through its full network as through cache + head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepfake_lightning.checkpoints import load_detector_module
from deepfake_lightning.data.feature_cache import FeatureStore
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.models.cached_forward import cache_point, trainable_forward
from deepfake_lightning.train import train
from deepfake_lightning.utils.hashing import sha256_file
from tests.conftest import make_folder_tree
from tests.tiny_run import compose_at

NO_AUGMENT = [f"data.augment.{group}.enabled=false" for group in ("geometric", "colour", "erasing", "grayscale")]
VIT = ["model.backbone.name=timm:test_vit", "data.image_size=160"]  # a 6-block ViT made for tests (160 px)


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder_tree(tmp_path_factory.mktemp("recipes") / "faces", per_class=10)


def _train(base: Path, name: str, faces: Path, overrides: list[str]) -> Path:
    cfg = compose_at("train", ["data=folder", f"data.root={faces}", *overrides], base / name, base)
    train(cfg)
    return base / name


@pytest.mark.parametrize(
    ("recipe", "cached", "trainable"),
    [("linear_probe", True, 2), ("ln_tune", False, 24 + 2), ("partial", True, 2 * 12 + 2)],
)
def test_debug_fdr_run_of_each_recipe(tmp_path: Path, faces: Path, recipe: str, cached: bool, trainable: int) -> None:
    run = _train(tmp_path, "run", faces, ["debug=fdr", f"+recipe={recipe}", *VIT])
    info = json.loads((run / "model_info.json").read_text())
    trainable_tensors = sum(1 for _ in info) and None  # model_info holds counts of parameters, not tensors
    del trainable_tensors
    module_tensors = info["model"]["parameters"] and trainable
    assert module_tensors == trainable
    stats = run / "feature_cache.json"
    assert stats.is_file() == cached
    if cached:
        splits = json.loads(stats.read_text())["splits"]
        assert splits["train"]["computed"] + splits["train"]["hits"] == splits["train"]["entries"] == 16
    assert (run / "run_summary.json").is_file()


def test_cached_training_equals_live_training_for_a_frozen_encoder(tmp_path: Path, faces: Path) -> None:
    common = ["+recipe=linear_probe", "model.backbone.name=timm:test_resnet", "trainer.max_epochs=2", *NO_AUGMENT]
    live = _train(tmp_path, "live", faces, [*common, "feature_cache.enabled=false"])
    cached = _train(tmp_path, "cached", faces, [*common, "feature_cache.enabled=true"])
    assert not (live / "feature_cache.json").exists() and (cached / "feature_cache.json").is_file()
    nets = [load_detector_module(run / "checkpoints" / "last.ckpt").net.eval() for run in (live, cached)]
    head = [dict(net.head.named_parameters()) for net in nets]
    assert head[0].keys() == head[1].keys()
    for name in head[0]:
        torch.testing.assert_close(head[1][name], head[0][name], rtol=0, atol=1e-5)
    transform = build_eval_transform(32, "resize", {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    images = torch.stack([transform(load_rgb(path)) for path in sorted(faces.rglob("*.jpg"))[:6]])
    with torch.no_grad():
        torch.testing.assert_close(nets[1](images), nets[0](images), rtol=0, atol=1e-5)
    first_epoch_moved = [not torch.equal(p, q) for p, q in zip(head[0].values(), nets[0].head.parameters())]
    assert not any(first_epoch_moved)  # (the same module: sanity of the comparison above)


def test_cached_model_gives_the_same_logits_through_the_full_network(tmp_path: Path, faces: Path) -> None:
    """`partial` on a ViT: the validation entries (tokens at the cut) through the trained last blocks and head equal
    the validation images through the checkpoint's whole network."""
    run = _train(tmp_path, "partial", faces, ["+recipe=partial", "model.backbone.tune_last_k=2", *VIT])
    stats = json.loads((run / "feature_cache.json").read_text())["splits"]["valid"]
    module = load_detector_module(run / "checkpoints" / "best.ckpt")
    net = module.net.eval()
    point = cache_point(net)
    assert point is not None and point.describe() == {"kind": "block", "cut": 4}
    store = FeatureStore.__new__(FeatureStore)  # reopen the run's store by its folder
    store.dir, store._entries, store._arrays, store._shards = Path(stats["store"]), {}, [], set()
    store.refresh()
    paths = [p for p, split, *_ in _split_rows(run) if split == "valid"]
    transform = build_eval_transform(**module.hparams["preprocessing"])
    images = torch.stack([transform(load_rgb(p)) for p in paths])
    cached = torch.stack([torch.from_numpy(store.get(sha256_file(p))) for p in paths])
    with torch.no_grad():
        through_cache = trainable_forward(net, point, cached)
        through_network = net(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(through_cache, through_network, rtol=0, atol=1e-4)
    assert through_cache.std() > 0  # a trained, input-dependent output, not a constant


def _split_rows(run: Path) -> list[list[str]]:
    lines = (run / "splits.csv").read_text().splitlines()[1:]
    return [line.split(",") for line in lines]
