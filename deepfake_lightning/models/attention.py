"""Spatial attention: a 1x1-conv bottleneck producing a per-location gate in [0, 1]."""

from __future__ import annotations

import torch
from torch import nn


class SpatialAttention(nn.Module):
    """channels -> hidden -> channels gating map; `enabled=False` makes it the identity for ablations."""

    def __init__(self, channels: int = 1280, hidden: int = 256, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.gate = (
            nn.Sequential(
                nn.Conv2d(channels, hidden, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, channels, kernel_size=1),
                nn.Sigmoid(),
            )
            if enabled
            else None
        )
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return x
        gate = self.gate(x)
        self.last_map = gate.detach().mean(dim=1, keepdim=True)  # kept for explanations
        return x * gate
