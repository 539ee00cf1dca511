"""`model.backbone.tune`: exactly the intended tensors train, frozen parts stay fixed and in eval mode, and the
recipes that make no sense for a backbone are refused with one line."""

from __future__ import annotations

import pytest
import torch

from deepfake_lightning.models import build_detector
from deepfake_lightning.modules import DetectorModule
from deepfake_lightning.utils.config_schema import BackboneSettings, ConfigError
from deepfake_lightning.utils.config_validation import validate_config

LINEAR = {"attention": {"enabled": False}, "head": {"hidden": [], "dropout": [0.0]}}


def _module(backbone: dict) -> DetectorModule:
    torch.manual_seed(0)
    return DetectorModule(backbone=backbone, scheduler=None, loss={"name": "bce"}, **LINEAR)


def _trainable(module: DetectorModule) -> set[str]:
    return {name for name, p in module.net.named_parameters() if p.requires_grad}


def _one_step(module: DetectorModule, size: int) -> set[str]:
    """One AdamW step from the module's own optimizer; returns the names of the tensors that changed."""
    before = {name: p.detach().clone() for name, p in module.net.named_parameters()}
    optimizer = module.configure_optimizers()
    module.train()
    images = torch.randn(4, 3, size, size)
    loss = module.loss_fn(module(images), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    loss.backward()
    optimizer.step()
    return {name for name, p in module.net.named_parameters() if not torch.equal(p, before[name])}


def test_ln_tune_trains_exactly_the_layernorms_and_the_head() -> None:
    module = _module({"name": "timm:test_vit", "tune": "ln"})
    trainable = _trainable(module)
    norms = {
        f"backbone.features.model.blocks.{b}.{norm}.{kind}"
        for b in range(6)
        for norm in ("norm1", "norm2")
        for kind in ("weight", "bias")
    }
    if isinstance(module.net.backbone.features.model.norm, torch.nn.LayerNorm):  # the final norm, where kept
        norms |= {"backbone.features.model.norm.weight", "backbone.features.model.norm.bias"}
    assert trainable == norms | {"head.mlp.1.weight", "head.mlp.1.bias"}
    assert module.size()["trainable_parameters"] == sum(
        p.numel() for n, p in module.net.named_parameters() if n in trainable
    )
    assert _one_step(module, 160) == trainable  # every trainable tensor moved, no frozen one did


def test_last_k_trains_only_the_last_k_blocks() -> None:
    module = _module({"name": "timm:test_vit", "tune": "last_k", "tune_last_k": 2})
    trainable = _trainable(module)
    blocks = {n.split(".")[4] for n in trainable if n.startswith("backbone.")}
    assert blocks == {"4", "5"}  # test_vit has 6 blocks
    assert {n for n in trainable if not n.startswith("backbone.")} == {"head.mlp.1.weight", "head.mlp.1.bias"}
    expected = {n for n, _ in module.net.named_parameters() if ".blocks.4." in n or ".blocks.5." in n}
    assert trainable - {"head.mlp.1.weight", "head.mlp.1.bias"} == expected
    assert _one_step(module, 160) == trainable


def test_last_k_on_mobilenet_counts_its_19_blocks() -> None:
    module = _module({"name": "mobilenet_v2", "tune": "last_k", "tune_last_k": 1})
    backbone = {n for n in _trainable(module) if n.startswith("backbone.")}
    assert backbone and all(n.startswith("backbone.features.18.") for n in backbone)
    assert _one_step(module, 64) == _trainable(module)


def test_frozen_trains_the_head_only_and_keeps_the_encoder_in_eval_mode() -> None:
    module = _module({"name": "mobilenet_v2", "tune": "frozen"})
    assert _trainable(module) == {"head.mlp.1.weight", "head.mlp.1.bias"}
    module.train()
    assert not any(m.training for m in module.net.backbone.features.modules())
    running = module.net.backbone.features[1].conv[0][1].running_mean.clone()
    assert _one_step(module, 64) == _trainable(module)
    assert torch.equal(module.net.backbone.features[1].conv[0][1].running_mean, running)


def test_last_k_keeps_the_frozen_part_in_eval_mode() -> None:
    module = _module({"name": "mobilenet_v2", "tune": "last_k", "tune_last_k": 2})
    module.train()
    features = module.net.backbone.features
    assert not any(m.training for block in features[:17] for m in block.modules())  # BatchNorms included
    assert all(m.training for block in features[17:] for m in block.modules())
    vit = (
        _module({"name": "timm:test_vit", "tune": "last_k", "tune_last_k": 1})
        .train()
        .net.backbone.features.model
    )
    assert not vit.patch_embed.training and not any(m.training for m in vit.blocks[4].modules())
    assert vit.blocks[5].training


@pytest.mark.parametrize(
    ("backbone", "message"),
    [
        ({"name": "mobilenet_v2", "tune": "ln"}, "model.backbone.tune=ln: mobilenet_v2 has no LayerNorm"),
        (
            {"name": "timm:test_resnet", "tune": "ln"},
            "model.backbone.tune=ln: timm:test_resnet has no LayerNorm",
        ),
        (
            {"name": "timm:test_vit", "tune": "last_k", "tune_last_k": 7},
            "model.backbone.tune_last_k=7: expected an integer in 1..6 (blocks of timm:test_vit)",
        ),
        (
            {"name": "timm:test_vit_relpos", "tune": "last_k", "tune_last_k": 1},
            "model.backbone.tune=last_k: timm:test_vit_relpos is not a chain of blocks",
        ),
    ],
)
def test_a_recipe_the_backbone_cannot_take_is_refused(backbone: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_detector(backbone, LINEAR["attention"], LINEAR["head"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"tune": "last_k"},
            "model.backbone.tune_last_k=None: expected an integer >= 1 with model.backbone.tune=last_k",
        ),
        (
            {"tune": "frozen", "tune_last_k": 2},
            "model.backbone.tune_last_k=2: applies to model.backbone.tune=last_k only",
        ),
        (
            {"tune": "ln", "freeze_first_n": 25},
            "model.backbone.freeze_first_n=25: applies to model.backbone.tune=all only",
        ),
        ({"tune": "some"}, "model.backbone.tune='some': expected all, frozen, ln or last_k"),
    ],
)
def test_tuning_keys_are_checked_together(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        BackboneSettings.check(values)
    assert str(err.value).startswith(message)


def test_start_up_check_refuses_ln_tune_on_a_batchnorm_cnn(compose_cfg) -> None:
    cfg = compose_cfg("train", ["model.backbone.tune=ln"])  # default backbone: MobileNetV2
    with pytest.raises(ConfigError, match="model.backbone.tune=ln: mobilenet_v2 has no LayerNorm"):
        validate_config(cfg)
