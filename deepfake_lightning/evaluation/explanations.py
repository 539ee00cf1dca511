"""Where the detector looks: attention-gate and Grad-CAM overlays for sampled test images.

Images are sampled from the four outcome groups (real/fake x correct/wrong) because explanations of correct
predictions alone hide the failure modes. Grad-CAM (pytorch-grad-cam) is taken at the attention output, the
last spatial map before pooling, for the class the model predicted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepfake_lightning.evaluation.plots import plot_explanations

GROUPS = (
    ("real, predicted real", 0, True),
    ("real, predicted fake", 0, False),
    ("fake, predicted fake", 1, True),
    ("fake, predicted real", 1, False),
)


def sample_groups(
    labels: Any, p_fake: Any, threshold: float, n_per_group: int, seed: int = 0
) -> dict[str, list[int]]:
    """Seeded indices of up to ``n_per_group`` images per outcome group (fewer when a group is smaller)."""
    y = np.asarray(labels).reshape(-1)
    correct = (np.asarray(p_fake).reshape(-1) >= threshold).astype(int) == y
    rng = np.random.default_rng(seed)
    picked = {}
    for title, label, is_correct in GROUPS:
        members = np.flatnonzero((y == label) & (correct == is_correct))
        chosen = (
            rng.choice(members, size=min(n_per_group, members.size), replace=False) if members.size else []
        )
        picked[title] = sorted(int(i) for i in chosen)
    return picked


FLAT_SPREAD = 0.1  # (max - min) / max below this: the map weights every location within 10%, i.e. no focus


def _relative(maps: np.ndarray) -> np.ndarray:
    """Per-image scaling by the map's maximum, not min-max: ratios between locations are kept, so a flat gate
    (the published channel gate sits at 0.50-0.51) is drawn flat instead of being stretched into a false focus."""
    flat = maps.reshape(maps.shape[0], -1)
    return (flat / np.maximum(flat.max(1, keepdims=True), 1e-8)).reshape(maps.shape)


def is_flat(low: float, high: float) -> bool:
    """A map whose locations differ by less than `FLAT_SPREAD` of its maximum selects nothing."""
    return high <= 0 or (high - low) / high < FLAT_SPREAD


def explain_batch(
    net: torch.nn.Module, images: torch.Tensor, predicted: Sequence[int]
) -> dict[str, np.ndarray | None]:
    """Attention map (upsampled, divided by its maximum; None when attention is off) and Grad-CAM (min-max
    scaled), both (B, H, W) in [0, 1].

    ``attention_range`` keeps each map's raw (min, max) for the panel title, where a flat map is called flat.
    """
    # lazy: grad-cam costs 33 s to import here (-X importtime after torch, load 15); only explanations need it
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    net.eval()
    height, width = images.shape[-2:]
    with torch.no_grad():
        net(images)
    gate = getattr(net.attention, "last_map", None) if getattr(net.attention, "enabled", False) else None
    attention = attention_range = None
    if gate is not None:
        flat = gate.float().flatten(1)
        attention_range = list(zip(flat.min(1).values.tolist(), flat.max(1).values.tolist(), strict=True))
        attention = _relative(
            F.interpolate(gate.float(), size=(height, width), mode="bilinear").squeeze(1).cpu().numpy()
        )
    targets = [BinaryClassifierOutputTarget(int(c)) for c in predicted]
    # an input that requires grad keeps Grad-CAM working when the whole backbone is frozen
    with GradCAM(model=net, target_layers=[net.attention]) as cam:
        gradcam = cam(input_tensor=images.detach().clone().requires_grad_(True), targets=targets)
    return {"attention": attention, "attention_range": attention_range, "gradcam": np.clip(gradcam, 0.0, 1.0)}


def _range_title(ranges: list[tuple[float, float]] | None, k: int) -> str:
    if ranges is None:
        return "attention (off)"
    low, high = ranges[k]
    return f"attention {low:.3g}-{high:.3g}{' (flat)' if is_flat(low, high) else ''}"


def write_explanations(
    module: Any,
    predictions: Mapping[str, Any],
    threshold: float,
    dataset: Any,
    normalize: Mapping[str, Any],
    output_path: str | Path,
    n_per_group: int = 2,
    seed: int = 0,
    device: Any = None,
) -> Path:
    """``explanations.png`` for images sampled from ``predictions`` (``path``/``label``/``p_fake`` columns).

    Images come from ``dataset`` (the evaluated ``ImageDataset``: same decoding and preprocessing as the
    scores); ``normalize`` undoes the normalisation for display.
    """
    net = module.net
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.to(device)
    position = {path: k for k, (path, _) in enumerate(dataset.samples)}
    mean = np.asarray(normalize["mean"]).reshape(1, 1, 3)
    std = np.asarray(normalize["std"]).reshape(1, 1, 3)
    picked = sample_groups(predictions["label"], predictions["p_fake"], threshold, n_per_group, seed)
    order = [i for indices in picked.values() for i in indices]
    explained: dict[int, dict[str, Any]] = {}
    if order:  # one batch for every group: two passes through the network in all
        images = torch.stack([dataset[position[predictions["path"][i]]]["image"] for i in order]).to(device)
        predicted = [int(predictions["p_fake"][i] >= threshold) for i in order]
        try:
            maps = explain_batch(net, images, predicted)
        finally:
            net.train(was_training)
        for k, i in enumerate(order):
            explained[i] = {
                "image": np.clip(images[k].permute(1, 2, 0).cpu().numpy() * std + mean, 0.0, 1.0),
                "attention": None if maps["attention"] is None else maps["attention"][k],
                "gradcam": maps["gradcam"][k],
                "attention_title": _range_title(maps["attention_range"], k),
                "caption": f"{Path(predictions['path'][i]).name[:18]}\np_fake={predictions['p_fake'][i]:.3f}",
            }
    rows = [
        (f"{title} ({len(indices)})", [explained[i] for i in indices]) for title, indices in picked.items()
    ]
    return plot_explanations(rows, output_path)
