"""Cutting an encoder between two blocks changes nothing: frozen part then trainable part equals the full forward,
for every family with a block view and every cut, and the detector's cache points do the same."""

from __future__ import annotations

import pytest
import torch

from deepfake_lightning.models import build_detector
from deepfake_lightning.models.cached_forward import cache_point, frozen_forward, trainable_forward
from deepfake_lightning.models.encoder_blocks import block_view
from deepfake_lightning.models.tuning import backbone_blocks

FAMILIES = [  # (backbone name, input size, blocks)
    ("timm:test_vit", 160, 6),
    ("timm:test_resnet", 64, 6),
    ("timm:test_convnext", 64, 6),
    ("timm:test_efficientnet", 64, 7),
    ("mobilenet_v2", 64, 19),
]


@pytest.mark.parametrize(("name", "size", "n_blocks"), FAMILIES)
def test_every_cut_gives_the_full_forward(name: str, size: int, n_blocks: int) -> None:
    torch.manual_seed(0)
    net = build_detector({"name": name}, {"enabled": False}, {"hidden": [], "dropout": [0.0]}).eval()
    view = backbone_blocks(net.backbone)
    assert view is not None and len(view.blocks) == n_blocks
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        full = net.backbone(x)
        for cut in range(n_blocks):
            torch.testing.assert_close(
                view.trainable_part(view.frozen_part(x, cut), cut), full, rtol=0, atol=1e-5
            )


def test_dinov2_with_a_dynamic_image_size_cuts_at_block_n_minus_k() -> None:
    """The encoder of the recipes (random weights here), at 112 px: 64 patch tokens plus the class token."""
    import timm

    torch.manual_seed(0)
    features = timm.create_model(
        "vit_small_patch14_dinov2", features_only=True, out_indices=(-1,), dynamic_img_size=True
    ).eval()
    view = block_view(features)
    assert view is not None and len(view.blocks) == 12
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        tokens = view.frozen_part(x, 10)
        assert tokens.shape == (1, 65, 384)
        torch.testing.assert_close(view.trainable_part(tokens, 10), features(x)[-1], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("backbone", "attention", "kind", "shape"),
    [
        ({"name": "timm:test_resnet", "tune": "frozen"}, False, "pooled", (2, 96)),
        ({"name": "timm:test_resnet", "tune": "frozen"}, True, "features", (2, 96, 2, 2)),
        ({"name": "timm:test_vit", "tune": "last_k", "tune_last_k": 2}, False, "block", (2, 101, 64)),
    ],
)
def test_cache_points_split_the_detector_exactly(
    backbone: dict, attention: bool, kind: str, shape: tuple
) -> None:
    torch.manual_seed(0)
    net = build_detector(backbone, {"enabled": attention}, {"hidden": [8], "dropout": [0.0, 0.0]}).eval()
    point = cache_point(net)
    assert point is not None and point.kind == kind
    size = 160 if "vit" in backbone["name"] else 64
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        cached = frozen_forward(net, point, x)
        assert tuple(cached.shape) == shape
        torch.testing.assert_close(trainable_forward(net, point, cached), net(x), rtol=0, atol=1e-5)


def test_recipes_that_train_every_block_have_no_cache_point() -> None:
    head = {"hidden": [], "dropout": [0.0]}
    assert (
        cache_point(build_detector({"name": "timm:test_vit", "tune": "ln"}, {"enabled": False}, head)) is None
    )
    assert cache_point(build_detector({"name": "timm:test_vit"}, {"enabled": False}, head)) is None
