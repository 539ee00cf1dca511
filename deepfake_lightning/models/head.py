"""Classifier head: pooled features -> MLP with BatchNorm and a dropout schedule -> one logit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepfake_lightning.utils.config_schema import HeadSettings


class MLPHead(nn.Module):
    """Dropout(d0) -> Linear -> BN -> ReLU -> Dropout(d1) -> ... -> Linear(1).

    `dropout` has one entry per Linear layer (len(hidden) + 1), so the published 0.5 -> 0.35 -> 0.25 schedule
    maps onto 1280 -> 512 -> 256 -> 1.
    """

    def __init__(
        self,
        in_features: int = 1280,
        hidden: Sequence[int] = (512, 256),
        dropout: Sequence[float] = (0.5, 0.35, 0.25),
    ) -> None:
        super().__init__()
        HeadSettings.check({"hidden": hidden, "dropout": dropout})
        hidden, dropout = list(hidden), [float(p) for p in dropout]
        layers: list[nn.Module] = []
        width = in_features
        for out, p in zip(hidden, dropout[:-1], strict=True):
            layers += [nn.Dropout(p), nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU(inplace=True)]
            width = out
        layers += [nn.Dropout(dropout[-1]), nn.Linear(width, 1)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).squeeze(-1)
