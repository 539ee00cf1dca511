"""Attention between backbone and pooling: a 1x1-conv bottleneck producing a gate in [0, 1] that scales the features.

Three kinds (`model.attention.kind`, docs/attention.md has the measurements behind them):

- `channel_gate` (default, the published "spatial attention 1280->256->1280"): one sigmoid gate per channel AND
  location. Measured, it does not select locations: trained on real faces its gates stay close to one value per
  channel across the feature map, and its channel-mean (what explanations show) is flat at about 0.5.
- `spatial`: channels -> hidden -> 1 and a sigmoid: one gate per location shared by every channel, so the map
  shown is exactly the map applied.
- `softmax`: the same single-channel score, normalised over locations (attention pooling): the weights sum to
  one per image, so the pooled feature is a weighted average and the model has to choose where to look. The
  features are scaled by `h*w*weight` (1 everywhere for a uniform map), the map shown is the weight itself.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfake_lightning.utils.config_schema import AttentionSettings


class SpatialAttention(nn.Module):
    """channels -> hidden -> (channels | 1) gating map; `enabled=False` makes it the identity for ablations.

    `last_map` (Bx1xhxw, in [0, 1]) is kept from the last forward for explanations and the inference API: the
    channel-mean gate for `channel_gate`, the gate for `spatial`, the location weights for `softmax`.
    """

    def __init__(
        self, channels: int = 1280, hidden: int = 256, enabled: bool = True, kind: str = "channel_gate"
    ) -> None:
        super().__init__()
        AttentionSettings.check({"hidden": hidden, "enabled": enabled, "kind": kind})
        self.enabled = enabled
        self.kind = kind
        self.gate = (
            nn.Sequential(
                nn.Conv2d(channels, hidden, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, channels if kind == "channel_gate" else 1, kernel_size=1),
                nn.Sigmoid() if kind != "softmax" else nn.Identity(),
            )
            if enabled
            else None
        )
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return x
        gate = self.gate(x)
        if self.kind == "softmax":
            weights = torch.softmax(gate.flatten(2), dim=-1).view_as(gate)
            self.last_map = weights.detach()
            return x * (weights * (weights.shape[-1] * weights.shape[-2]))
        self.last_map = gate.detach().mean(dim=1, keepdim=True)  # kept for explanations
        return x * gate
