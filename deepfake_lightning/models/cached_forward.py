"""Where a detector is cut for cached training, and the network on either side of the cut.

With `model.backbone.tune=frozen` or `last_k` the start of the network never changes while training, so its output
per image can be computed once and stored (data/feature_cache.py); a training step then runs only the rest:

- `pooled`: `tune=frozen` without attention: the pooled feature vector (C numbers per image, so a probe's epoch
  over cached features is a few matrix products);
- `features`: `tune=frozen` with attention (it needs the locations): the backbone's feature map;
- `block`: `tune=last_k`: what enters the first trainable block, the output of block n-k (a ViT: every token,
  prefix tokens included); only the last k blocks run per step.

`trainable_forward(net, point, frozen_forward(net, point, x))` equals `net(x)` up to float rounding
(tests/test_cached_forward.py); eval, export and serving always run `net(x)` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from deepfake_lightning.models.detector import DeepfakeDetector
from deepfake_lightning.models.tuning import backbone_blocks


@dataclass(frozen=True)
class CachePoint:
    """`kind` is pooled, features or block; `cut` is the number of blocks before the cut (kind block)."""

    kind: str
    cut: int = 0

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "cut": self.cut}


def cache_point(net: DeepfakeDetector) -> CachePoint | None:
    """The cut of `net`'s tuning recipe; None when every block trains (tune=all or ln: nothing worth caching)."""
    tune = getattr(net.backbone, "tune", "all")
    if tune == "frozen":
        return CachePoint("features" if net.attention.enabled else "pooled")
    if tune == "last_k":
        view = backbone_blocks(net.backbone)
        assert view is not None  # apply_tuning refused the backbone otherwise
        return CachePoint("block", len(view.blocks) - int(net.backbone.tune_last_k))
    return None


def frozen_forward(net: DeepfakeDetector, point: CachePoint, images: torch.Tensor) -> torch.Tensor:
    """The frozen start of the network: what the cache stores per image."""
    if point.kind == "block":
        return backbone_blocks(net.backbone).frozen_part(images, point.cut)  # type: ignore[union-attr]
    features = net.backbone(images)
    return net.pool(features).flatten(1) if point.kind == "pooled" else features


def trainable_forward(net: DeepfakeDetector, point: CachePoint, cached: torch.Tensor) -> torch.Tensor:
    """The rest of the network, from cached values to one logit per image."""
    if point.kind == "pooled":
        return net.head(cached)
    if point.kind == "block":
        cached = backbone_blocks(net.backbone).trainable_part(cached, point.cut)  # type: ignore[union-attr]
    return net.classify(cached)


def frozen_state(net: DeepfakeDetector, point: CachePoint) -> dict[str, torch.Tensor]:
    """Parameters and buffers the frozen start reads: part of the cache key, so changed weights miss the cache."""
    if point.kind == "block":
        return backbone_blocks(net.backbone).frozen_state(point.cut)  # type: ignore[union-attr]
    return net.backbone.features.state_dict()
