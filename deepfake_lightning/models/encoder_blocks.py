"""An encoder seen as stem -> blocks -> output, so it can be cut between two blocks.

`tune=last_k` (models/tuning.py) trains the blocks after the cut, and the feature cache stores the activations at
the cut (the output of block n-k) so that a training step runs only the last k blocks. Both need the same view of
the encoder, defined here for the families whose forward is a plain chain of blocks:

- timm Vision Transformers (`features_only` wraps them in a `FeatureGetterNet`): patch embedding, position
  embedding and prefix tokens are the stem, `blocks` are the transformer blocks, and the output drops the prefix
  tokens and folds the patch tokens into a square BxCxhxw map, as timm's `forward_intermediates` does;
- chains of modules: torchvision MobileNetV2 `features` (19 blocks), timm `FeatureListNet` (ResNet, ConvNeXt,
  RegNet, ... stages) and timm `EfficientNetFeatures` (stem, then its stages). A unit without parameters (an
  activation, a pooling layer) is no block: it runs with the block before it.

`frozen_part(x, cut)` then `trainable_part(h, cut)` equals the backbone's own forward (tests/test_encoder_blocks.py
checks every cut of each family); any other backbone has no view and `last_k` refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


class BlockView:
    """`blocks` in forward order; `cut` = how many of them run before the cut (0 <= cut < len(blocks))."""

    blocks: list[nn.Module]

    def frozen_part(self, x: torch.Tensor, cut: int) -> torch.Tensor:
        raise NotImplementedError

    def trainable_part(self, h: torch.Tensor, cut: int) -> torch.Tensor:
        raise NotImplementedError

    def frozen_modules(self, cut: int) -> list[nn.Module]:
        """The modules `frozen_part` runs: kept in eval mode when frozen."""
        raise NotImplementedError

    def frozen_state(self, cut: int) -> dict[str, torch.Tensor]:
        """The parameters and buffers `frozen_part` reads: what the feature cache's encoder hash covers."""
        raise NotImplementedError


class ChainBlocks(BlockView):
    """Units run one after another; `output` turns the last unit's output into the backbone's (e.g. NHWC->NCHW)."""

    def __init__(self, units: Sequence[nn.Module], output: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.units = list(units)
        self.output = output
        self._block_units = [i for i, unit in enumerate(self.units) if any(True for _ in unit.parameters())]
        self.blocks = [self.units[i] for i in self._block_units]

    def _boundary(self, cut: int) -> int:
        """Index of the first unit after the cut (units without parameters stay with the block before them)."""
        return 0 if cut == 0 else self._block_units[cut - 1] + 1

    def frozen_part(self, x: torch.Tensor, cut: int) -> torch.Tensor:
        for unit in self.units[: self._boundary(cut)]:
            x = unit(x)
        return x

    def trainable_part(self, h: torch.Tensor, cut: int) -> torch.Tensor:
        for unit in self.units[self._boundary(cut) :]:
            h = unit(h)
        return self.output(h)

    def frozen_modules(self, cut: int) -> list[nn.Module]:
        return self.units[: self._boundary(cut)]

    def frozen_state(self, cut: int) -> dict[str, torch.Tensor]:
        return {
            f"{index}.{name}": value
            for index, unit in enumerate(self.frozen_modules(cut))
            for name, value in unit.state_dict().items()
        }


class VitBlocks(BlockView):
    """A timm `VisionTransformer` inside a `features_only` `FeatureGetterNet` (last level, NCHW output)."""

    def __init__(self, getter: nn.Module) -> None:
        self.vit = getter.model
        self.norm = bool(getattr(getter, "norm", False))
        self.blocks = list(self.vit.blocks)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        return vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))

    def frozen_part(self, x: torch.Tensor, cut: int) -> torch.Tensor:
        x = self._stem(x)
        for block in self.blocks[:cut]:
            x = block(x)
        return x

    def trainable_part(self, h: torch.Tensor, cut: int) -> torch.Tensor:
        for block in self.blocks[cut:]:
            h = block(h)
        if self.norm:
            h = self.vit.norm(h)
        patches = h[:, self.vit.num_prefix_tokens :]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(
                f"{patches.shape[1]} patch tokens do not form a square grid (square images only)"
            )
        return patches.reshape(len(h), side, side, -1).permute(0, 3, 1, 2).contiguous()

    def frozen_modules(self, cut: int) -> list[nn.Module]:
        vit = self.vit
        return [vit.patch_embed, vit.pos_drop, vit.patch_drop, vit.norm_pre, *self.blocks[:cut]]

    def frozen_state(self, cut: int) -> dict[str, torch.Tensor]:
        def before_cut(name: str) -> bool:
            if name.startswith("blocks."):
                return int(name.split(".")[1]) < cut
            return not name.startswith(("norm.", "fc_norm.", "head."))  # applied after the blocks

        return {name: value for name, value in self.vit.state_dict().items() if before_cut(name)}


def block_view(features: nn.Module, channels_last_output: bool = False) -> BlockView | None:
    """The view of a backbone's feature extractor (`FeatureBackbone.features`), or None for another family."""
    output: Callable[[torch.Tensor], torch.Tensor] = (
        (lambda h: h.permute(0, 3, 1, 2)) if channels_last_output else (lambda h: h)
    )
    if isinstance(features, nn.Sequential):  # torchvision MobileNetV2 `features`
        return ChainBlocks(list(features), output)
    # lazy: timm costs more than torch to import (-X importtime); a MobileNetV2 backbone never needs it
    from timm.models import EfficientNetFeatures, FeatureListNet, VisionTransformer

    if type(features).__name__ == "FeatureGetterNet" and isinstance(features.model, VisionTransformer):
        if str(getattr(features.output_fmt, "value", features.output_fmt)) == "NCHW":
            return VitBlocks(features)
    if (
        isinstance(features, FeatureListNet)
        and list(features.return_layers)[-1:] == list(features.keys())[-1:]
    ):
        return ChainBlocks(list(features.values()), output)
    if (
        isinstance(features, EfficientNetFeatures)
        and features.feature_hooks is None
        and max(features._stage_out_idx, default=-1) == len(features.blocks)
    ):
        return ChainBlocks([features.conv_stem, features.bn1, *features.blocks], output)
    return None
