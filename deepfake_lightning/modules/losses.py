"""Training losses on single-logit outputs (target 1 = fake)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from deepfake_lightning.utils.config_schema import LossSettings


class BinaryLoss(torch.nn.Module):
    """Focal loss (torchvision) or plain BCE, chosen by name so sweeps can flip one key."""

    def __init__(self, name: str = "focal", alpha: float = 0.5, gamma: float = 2.0) -> None:
        super().__init__()
        LossSettings.check({"name": name, "alpha": alpha, "gamma": gamma})
        self.name, self.alpha, self.gamma = name, alpha, gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        return sigmoid_focal_loss(logits, targets, alpha=self.alpha, gamma=self.gamma, reduction="mean")
