"""The advanced_v2 detector: backbone -> spatial attention -> global pooling -> MLP head -> one logit."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepfake_lightning.models.attention import SpatialAttention
from deepfake_lightning.models.backbones import build_backbone
from deepfake_lightning.models.feature_backbone import FeatureBackbone
from deepfake_lightning.models.head import MLPHead


class DeepfakeDetector(nn.Module):
    """Returns one logit per image; positive means fake."""

    def __init__(self, backbone: FeatureBackbone, attention: SpatialAttention, head: MLPHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.attention = attention
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.backbone(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone feature map -> logit (also the trainable end of a cached forward, models/cached_forward.py)."""
        return self.head(self.pool(self.attention(features)).flatten(1))


def build_detector(
    backbone: dict[str, Any],
    attention: dict[str, Any],
    head: dict[str, Any],
    image_size: int | None = None,
) -> DeepfakeDetector:
    """Build from plain config dicts (the form stored in checkpoints, so they load without pickled objects).

    Attention and head widths follow the backbone's channel count (1280 for MobileNetV2, timm's
    `feature_info.channels()[-1]` otherwise). `image_size`, the run's input size, builds a ViT backbone's position
    table for it (other backbones take any size anyway).
    """
    net_backbone = build_backbone(backbone, image_size=image_size)
    return DeepfakeDetector(
        backbone=net_backbone,
        attention=SpatialAttention(channels=net_backbone.out_channels, **attention),
        head=MLPHead(in_features=net_backbone.out_channels, **head),
    )


def model_size(model: nn.Module) -> dict[str, float | int]:
    """Parameter counts and fp32 size (parameters + buffers), as the published 15 MB figure is counted."""
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    frozen_tensors = sum(1 for p in model.parameters() if not p.requires_grad)
    return {
        "parameters": params,
        "trainable_parameters": trainable,
        "frozen_tensors": frozen_tensors,
        "size_mb_fp32": round((params + buffers) * 4 / 1e6, 3),
    }
