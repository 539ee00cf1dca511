"""The encoder recipes end to end: a `debug=fdr` run of each, training on cached features equals training live,
and a model trained on cached features gives the same logits through its full network as through cache + head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepfake_lightning.bundle import open_model
from deepfake_lightning.data.feature_cache import FeatureStore
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.models import build_detector
from deepfake_lightning.models.cached_forward import cache_point, trainable_forward
from deepfake_lightning.train import train
from deepfake_lightning.utils.hashing import sha256_file
from tests.conftest import make_folder_tree
from tests.sweep_helpers import run_train, tiny_synthetic
from tests.tiny_run import compose_at

NO_AUGMENT = [
    f"data.augment.{group}.enabled=false" for group in ("geometric", "colour", "erasing", "grayscale")
]
VIT = ["model.backbone.name=timm:test_vit", "data.image_size=160"]  # a 6-block ViT made for tests (160 px)


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder_tree(tmp_path_factory.mktemp("recipes") / "faces", per_class=10)


def _train(base: Path, name: str, faces: Path, overrides: list[str]) -> Path:
    cfg = compose_at("train", ["data=folder", f"data.root={faces}", *overrides], base / name, base)
    train(cfg)
    return base / name


def _test_vit() -> torch.nn.Module:
    """The ViT inside the detector the runs build (its final norm is kept or not by the backbone)."""
    net = build_detector({"name": "timm:test_vit"}, {"enabled": False}, {"hidden": [], "dropout": [0.0]})
    return net.backbone.features.model


def _block_parameters(k: int) -> int:
    return sum(p.numel() for block in _test_vit().blocks[-k:] for p in block.parameters())


def _layer_norm_parameters() -> int:
    vit = _test_vit()
    norms = [m for block in vit.blocks for m in (block.norm1, block.norm2)]
    norms += [vit.norm] if isinstance(vit.norm, torch.nn.LayerNorm) else []
    return sum(p.numel() for norm in norms for p in norm.parameters())


@pytest.mark.parametrize("recipe", ["linear_probe", "ln_tune", "partial"])
def test_debug_fdr_run_of_each_recipe(tmp_path: Path, faces: Path, recipe: str) -> None:
    run = _train(tmp_path, "run", faces, ["debug=fdr", f"+recipe={recipe}", *VIT])
    head = 64 + 1  # Linear(64, 1) on test_vit's 64 channels
    expected = {
        "linear_probe": head,
        "ln_tune": head + _layer_norm_parameters(),
        "partial": head + _block_parameters(2),
    }
    info = json.loads((run / "model_info.json").read_text())
    assert info["model"]["trainable_parameters"] == expected[recipe]
    stats = run / "feature_cache.json"
    assert stats.is_file() == (recipe != "ln_tune")
    if recipe != "ln_tune":
        splits = json.loads(stats.read_text())["splits"]
        assert splits["train"]["hits"] + splits["train"]["computed"] == splits["train"]["entries"] == 16
    assert json.loads((run / "run_summary.json").read_text())["status"] == "ok"


def test_cached_training_equals_live_training_for_a_frozen_encoder(tmp_path: Path, faces: Path) -> None:
    common = [
        "+recipe=linear_probe",
        "model.backbone.name=timm:test_resnet",
        "trainer.max_epochs=2",
        *NO_AUGMENT,
    ]
    live = _train(tmp_path, "live", faces, [*common, "feature_cache.enabled=false"])
    cached = _train(tmp_path, "cached", faces, [*common, "feature_cache.enabled=true"])
    assert not (live / "feature_cache.json").exists() and (cached / "feature_cache.json").is_file()
    nets = [open_model(run / "checkpoints" / "last.ckpt").module.net.eval() for run in (live, cached)]
    head = [dict(net.head.named_parameters()) for net in nets]
    assert head[0].keys() == head[1].keys()
    for name in head[0]:
        torch.testing.assert_close(head[1][name], head[0][name], rtol=0, atol=1e-5)
    transform = build_eval_transform(
        32, "resize", {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    )
    images = torch.stack([transform(load_rgb(path)) for path in sorted(faces.rglob("*.jpg"))[:6]])
    with torch.no_grad():
        torch.testing.assert_close(nets[1](images), nets[0](images), rtol=0, atol=1e-5)
    histories = [json.loads((run / "training_history.json").read_text()) for run in (live, cached)]
    losses = [[epoch["train/loss"] for epoch in history] for history in histories]
    assert len(losses[0]) == 2 and losses[0][0] != losses[0][1]  # two epochs, and the head learnt something
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)  # the same trajectory


def test_cached_model_gives_the_same_logits_through_the_full_network(tmp_path: Path, faces: Path) -> None:
    """`partial` on a ViT: the validation entries (tokens at the cut) through the trained last blocks and head equal
    the validation images through the checkpoint's whole network."""
    run = _train(tmp_path, "partial", faces, ["+recipe=partial", "model.backbone.tune_last_k=2", *VIT])
    stats = json.loads((run / "feature_cache.json").read_text())["splits"]["valid"]
    module = open_model(run / "checkpoints" / "best.ckpt").module
    net = module.net.eval()
    point = cache_point(net)
    assert point is not None and point.describe() == {"kind": "block", "cut": 4}
    store = FeatureStore.open(stats["store"])
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


def test_the_recipe_sweep_chooses_on_validation_without_scoring_test(tmp_path: Path) -> None:
    """The documented command at tiny scale (two recipes; `data.image_size` on the command line replaces the
    sweep's 112,224): each job's best validation AUROC in the multirun summary, and no test split scored."""
    sweep = tmp_path / "sweep"
    tiny = [arg for arg in tiny_synthetic(tmp_path) if not arg.startswith("data.image_size=")]
    proc = run_train(
        "-m",
        "hparams_search=encoder_recipes",
        *tiny,
        "+recipe=linear_probe,partial",
        "model.backbone.name=timm:test_vit",  # a dynamic image size
        "data.image_size=112",
        f"feature_cache.dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert [job["status"] for job in jobs] == ["ok", "ok"]
    assert [job["label"] for job in jobs] == ["+recipe=linear_probe", "+recipe=partial"]
    assert all(isinstance(job["metric_value"], float) and job["test"] == {} for job in jobs)
    assert not list(sweep.glob("*/test_results.json"))
    stores = {
        json.loads(p.read_text())["splits"]["train"]["store"] for p in sweep.glob("*/feature_cache.json")
    }
    assert len(stores) == 2  # each recipe has its own cut, so its own cache key
