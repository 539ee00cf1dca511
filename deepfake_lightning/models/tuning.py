"""`model.backbone.tune`: which parameters of the encoder train; attention and head always train.

- `all` (default): every parameter, except the first `freeze_first_n` tensors (the published recipe's knob);
- `frozen`: none; the encoder is a fixed feature extractor (a linear probe, UnivFD);
- `ln`: only the LayerNorms' weights and biases (GenD's recipe); refused for an encoder without LayerNorms (a
  BatchNorm CNN), where "tune the norms" would be another recipe;
- `last_k`: the last `tune_last_k` blocks (models/encoder_blocks.py says what a block is per family); refused
  for a family without a block view.

Frozen parts run in eval mode whatever the module's mode: `frozen` keeps the whole encoder in eval, `last_k` the
stem and the frozen blocks, and every BatchNorm whose parameters are all frozen keeps its running statistics
(`FeatureBackbone.keep_frozen_in_eval`). That also makes a frozen part deterministic, which the feature cache needs.
"""

from __future__ import annotations

from torch import nn

from deepfake_lightning.models.encoder_blocks import BlockView, block_view
from deepfake_lightning.models.feature_backbone import FeatureBackbone
from deepfake_lightning.utils.config_schema import ConfigError


def backbone_blocks(backbone: FeatureBackbone) -> BlockView | None:
    """The backbone's block view (None for a family without one)."""
    return block_view(backbone.features, bool(getattr(backbone, "channels_last_output", False)))


def _name(backbone: FeatureBackbone) -> str:
    model_name = getattr(backbone, "model_name", None)
    return f"timm:{model_name}" if model_name else "mobilenet_v2"


def layer_norms(module: nn.Module) -> list[nn.Module]:
    """LayerNorms with parameters (timm's LayerNorm2d and friends subclass `nn.LayerNorm`)."""
    return [m for m in module.modules() if isinstance(m, nn.LayerNorm) and any(True for _ in m.parameters())]


def apply_tuning(backbone: FeatureBackbone, tune: str = "all", tune_last_k: int | None = None) -> None:
    """Set `requires_grad` of the encoder's parameters for `tune` and keep its frozen parts in eval mode."""
    if tune == "all":
        return
    features = backbone.features
    for param in features.parameters():
        param.requires_grad_(False)
    kept_eval: list[nn.Module] = []
    if tune == "frozen":
        kept_eval = [features]
    elif tune == "ln":
        norms = layer_norms(features)
        if not norms:
            raise ConfigError(
                f"model.backbone.tune=ln: {_name(backbone)} has no LayerNorm to tune (BatchNorm CNNs have none); "
                "expected a transformer or ConvNeXt-like encoder, or tune=frozen, last_k or all"
            )
        for param in (p for norm in norms for p in norm.parameters()):
            param.requires_grad_(True)
    elif tune == "last_k":
        view = backbone_blocks(backbone)
        if view is None:
            raise ConfigError(
                f"model.backbone.tune=last_k: {_name(backbone)} is not a chain of blocks this project can cut "
                "(timm ViTs, MobileNetV2, timm features_only CNNs and EfficientNets are); use tune=frozen, ln or all"
            )
        n_blocks = len(view.blocks)
        if tune_last_k is None or not 1 <= tune_last_k <= n_blocks:
            raise ConfigError(
                f"model.backbone.tune_last_k={tune_last_k!r}: expected an integer in 1..{n_blocks} "
                f"(blocks of {_name(backbone)})"
            )
        cut = n_blocks - tune_last_k
        for param in (p for block in view.blocks[cut:] for p in block.parameters()):
            param.requires_grad_(True)
        kept_eval = view.frozen_modules(cut)
    else:
        raise ConfigError(f"model.backbone.tune={tune!r}: expected all, frozen, ln or last_k")
    backbone.tune, backbone.tune_last_k = tune, tune_last_k
    backbone.keep_frozen_in_eval(kept_eval)
