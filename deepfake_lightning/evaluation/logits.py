"""Raw logits of a checkpoint's LightningModule over a labelled DataLoader, outside the Trainer.

Evaluation's half of prediction: uncalibrated logits and labels, the inputs of calibration and every metric.
Scoring unlabelled files with a deployed model (calibrated p_fake, a label, one row per file, errors included)
is `prediction/files.py`; it runs through `Detector` backends, not the training module.

Calibration, extra eval sets, robustness and explanations all need predictions of an already-tested module
without Lightning's loop machinery (no logging, no callbacks, no stage metrics to reset); one plain
``no_grad`` loop serves them all and skips batches whose images were all unreadable, as ``test_step`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch


@torch.no_grad()
def predict_logits(
    module: torch.nn.Module, loader: Iterable[dict[str, Any]], device: Any = None
) -> dict[str, Any]:
    """``{"path": list, "label": int64 array, "logit": float64 array, "skipped": list}`` in loader order."""
    device = torch.device(device) if device is not None else next(module.parameters()).device
    was_training = module.training
    module.eval().to(device)
    paths: list[str] = []
    labels: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    skipped: list[str] = []
    try:
        for batch in loader:
            skipped.extend(batch.get("skipped", []))
            if batch["image"].numel() == 0:
                continue
            out = module(batch["image"].to(device, non_blocking=True)).float().reshape(-1)
            paths.extend(batch["path"])
            labels.append(batch["target"].long().cpu().numpy())
            logits.append(out.cpu().double().numpy())
    finally:
        module.train(was_training)
    if not paths:
        raise ValueError("the loader produced no predictions (empty, or every image was skipped)")
    return {
        "path": paths,
        "label": np.concatenate(labels).astype(np.int64),
        "logit": np.concatenate(logits),
        "skipped": skipped,
    }
