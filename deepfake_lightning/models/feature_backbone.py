"""What every backbone shares: a feature extractor, its channel count, and freezing of its first N tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepfake_lightning.utils.config_schema import check_freeze_first_n


class FeatureBackbone(nn.Module):
    """Wraps `features` (images -> Bx`out_channels`xhxw) and freezes its first `freeze_first_n` parameter tensors.

    Tensors are counted in registration order (a conv weight and each BatchNorm weight/bias count one each), the
    Keras-style "first N layers" convention of the published model, for every backbone family. A BatchNorm whose
    parameters are all frozen is also kept in eval mode so its (pretrained) running statistics stay fixed.
    """

    def __init__(
        self, features: nn.Module, out_channels: int, freeze_first_n: int = 0, name: str = ""
    ) -> None:
        super().__init__()
        self.features = features
        self.out_channels = int(out_channels)
        check_freeze_first_n(freeze_first_n, len(list(features.parameters())), name)
        self.freeze_first_n = freeze_first_n
        for index, param in enumerate(features.parameters()):
            param.requires_grad_(index >= freeze_first_n)
        self.tune, self.tune_last_k = "all", None  # models/tuning.py sets other recipes
        self._frozen_bn: list[nn.Module] = []  # BatchNorms whose parameters are all frozen
        self._kept_eval: list[nn.Module] = []  # those and the recipe's frozen part (models/tuning.py)
        self.keep_frozen_in_eval()

    def keep_frozen_in_eval(self, modules: Sequence[nn.Module] = ()) -> None:
        """Keep `modules` (a frozen part: dropout, drop-path and norms fixed) and every BatchNorm whose parameters
        are all frozen in eval mode whatever the module's mode; called again when the frozen set changes."""
        # a BatchNorm without affine parameters has nothing to freeze and follows the module's mode
        self._frozen_bn = [
            module
            for module in self.features.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            and any(True for _ in module.parameters())
            and not any(p.requires_grad for p in module.parameters())
        ]
        self._kept_eval = list(modules) + self._frozen_bn
        self.train(self.training)

    def train(self, mode: bool = True) -> FeatureBackbone:
        super().train(mode)
        for module in self._kept_eval:
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
