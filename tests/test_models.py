"""advanced_v2 network: shapes, size, freezing, attention switch, dropout schedule, weights loading, losses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2

from deepfake_lightning.models import MLPHead, MobileNetV2Backbone, WeightsError, build_detector, model_size
from deepfake_lightning.models.backbone import count_backbone_tensors
from deepfake_lightning.modules.losses import BinaryLoss

ADVANCED_V2 = {
    "backbone": {"weights": None, "freeze_first_n": 25},
    "attention": {"enabled": True, "hidden": 256},
    "head": {"hidden": [512, 256], "dropout": [0.5, 0.35, 0.25]},
}


def test_forward_gives_one_logit_per_image() -> None:
    net = build_detector(**ADVANCED_V2).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 3, 64, 64))
    assert out.shape == (3,)
    assert net.attention.last_map.shape == (3, 1, 2, 2)


def test_parameter_count_and_size_match_the_published_model() -> None:
    size = model_size(build_detector(**ADVANCED_V2))
    # MobileNetV2 features 2,223,872 + attention 2*1280*256+256+1280 + head MLP with BN
    assert size["parameters"] == 3_669_761
    assert 14.0 < size["size_mb_fp32"] < 15.5  # the reference reports 15 MB
    assert size["frozen_tensors"] == 25


def test_freeze_first_n_freezes_exactly_n_tensors_in_order() -> None:
    backbone = MobileNetV2Backbone(weights=None, freeze_first_n=25)
    flags = [p.requires_grad for p in backbone.features.parameters()]
    assert flags[:25] == [False] * 25 and all(flags[25:])
    backbone.train()
    frozen_bn = [
        m for m in backbone.features.modules() if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad
    ]
    assert frozen_bn and all(not m.training for m in frozen_bn)


def test_freeze_count_above_tensor_count_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"freeze_first_n=999: expected an integer in 0..156 \(parameter tensors of MobileNetV2",
    ):
        MobileNetV2Backbone(freeze_first_n=999)
    assert count_backbone_tensors() == 156


def test_attention_off_is_identity_and_removes_parameters() -> None:
    on = build_detector(**ADVANCED_V2)
    off = build_detector(**{**ADVANCED_V2, "attention": {"enabled": False, "hidden": 256}})
    assert (
        sum(p.numel() for p in on.parameters()) - sum(p.numel() for p in off.parameters())
        == 2 * 1280 * 256 + 256 + 1280
    )
    x = torch.randn(2, 1280, 3, 3)
    assert torch.equal(off.attention(x), x)


def test_dropout_schedule_follows_config() -> None:
    head = MLPHead(1280, [512, 256], [0.5, 0.35, 0.25])
    assert [m.p for m in head.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.35, 0.25]
    assert [m.num_features for m in head.modules() if isinstance(m, nn.BatchNorm1d)] == [512, 256]
    with pytest.raises(ValueError, match="expected 3"):
        MLPHead(1280, [512, 256], [0.5])


def test_weights_file_with_sha256(tmp_path: Path) -> None:
    reference = mobilenet_v2(weights=None)
    path = tmp_path / "mnv2.pth"
    torch.save(reference.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backbone = MobileNetV2Backbone(weights=str(path), sha256=digest)
    assert torch.equal(backbone.features[0][0].weight, reference.features[0][0].weight)
    with pytest.raises(WeightsError, match="SHA-256"):
        MobileNetV2Backbone(weights=str(path), sha256="0" * 64)


def test_weights_file_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="missing"):
        MobileNetV2Backbone(weights=str(path))


def test_named_weights_without_cache_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", _no_network)
    with pytest.raises(WeightsError, match=r"hub/checkpoints.*model.backbone.weights=null"):
        MobileNetV2Backbone(weights="IMAGENET1K_V1")
    with pytest.raises(WeightsError, match="neither a torchvision weights name"):
        MobileNetV2Backbone(weights="IMAGENET_V9")


def test_named_weights_load_from_torch_home_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline users drop the file in $TORCH_HOME/hub/checkpoints; torchvision's own cache lookup finds it."""
    from torchvision.models import MobileNet_V2_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    reference = mobilenet_v2(weights=None)
    filename = MobileNet_V2_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    torch.save(reference.state_dict(), cache / filename)
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", _cached_only)
    backbone = MobileNetV2Backbone(weights="IMAGENET1K_V1")
    assert torch.equal(backbone.features[1].conv[0][0].weight, reference.features[1].conv[0][0].weight)


def _no_network(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise ConnectionError("no network")


def _cached_only(url: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    """torch.hub's loader with hash checks off (our test file is not the real download)."""
    kwargs["check_hash"] = False
    return torch.hub.load_state_dict_from_url(url, *args, **kwargs)


def test_focal_and_bce_losses() -> None:
    logits = torch.tensor([3.0, -3.0, 0.5, -0.2])
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0])
    bce = BinaryLoss("bce")(logits, targets)
    assert bce == pytest.approx(nn.functional.binary_cross_entropy_with_logits(logits, targets).item())
    focal = BinaryLoss("focal", alpha=-1, gamma=2.0)(logits, targets)
    assert 0 < focal < bce  # focal down-weights the easy examples
    assert BinaryLoss("focal", alpha=-1, gamma=0.0)(logits, targets) == pytest.approx(bce.item())
    with pytest.raises(ValueError, match="model.loss.name='hinge'"):
        BinaryLoss("hinge")
