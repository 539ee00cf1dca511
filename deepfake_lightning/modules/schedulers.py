"""LR scheduler factories returning Lightning scheduler dicts; `total_steps` is known only at fit time."""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau


def cosine_with_warmup(
    optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.05, min_lr_ratio: float = 0.01
) -> dict[str, Any]:
    """Linear warm-up then cosine decay to `min_lr_ratio * lr`, stepped every optimizer step."""
    warmup = max(1, int(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}


def reduce_on_plateau(
    optimizer: Optimizer,
    total_steps: int,
    monitor: str = "val/auroc",
    mode: str = "max",
    factor: float = 0.5,
    patience: int = 2,
) -> dict[str, Any]:
    """Halve the LR when the validation metric stalls (the Keras recipe the published model used)."""
    del total_steps
    scheduler = ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience)
    return {"scheduler": scheduler, "monitor": monitor, "interval": "epoch"}
