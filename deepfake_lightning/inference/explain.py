"""What the service shows beside a score: the crop the model saw and where it looked, as PNGs.

The crop is the model's own input (after face crop, resize and normalisation are undone), so a user sees exactly
what was scored. The map is the attention gate of the forward pass that produced the score when the model has
one (any backend), else Grad-CAM at the attention layer (torch backend; `evaluation/explanations.py`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch

from deepfake_lightning.evaluation.explanations import explain_batch, is_flat
from deepfake_lightning.inference.backends import TorchBackend
from deepfake_lightning.inference.detector import BaseDetector, Detector

OVERLAY_ALPHA = 0.45


def png_base64(image: np.ndarray) -> str:
    """HxWx3 RGB uint8 -> base64 PNG (what a browser puts straight into `data:image/png;base64,...`)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def scored_crop(tensor: torch.Tensor, normalize: Mapping[str, Any] | None) -> np.ndarray:
    """CHW model input -> HxWx3 uint8: `A.Normalize` undone ((x / 255 - mean) / std)."""
    image = tensor.detach().float().cpu().permute(1, 2, 0).numpy()
    if normalize is not None:
        mean = np.asarray(normalize["mean"], dtype=np.float32).reshape(1, 1, 3)
        std = np.asarray(normalize["std"], dtype=np.float32).reshape(1, 1, 3)
        image = (image * std + mean) * 255.0
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def overlay(crop: np.ndarray, heat: np.ndarray, relative: bool = False) -> np.ndarray:
    """Map (any size) upsampled onto the crop with the JET colour map: min-max scaled, or with `relative`
    divided by its maximum so that a flat attention map is drawn flat, not stretched into a focus."""
    heat = heat.astype(np.float32)
    low, high = float(heat.min()), float(heat.max())
    heat = heat / max(high, 1e-8) if relative else (heat - low) / max(high - low, 1e-8)
    heat = cv2.resize(heat, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(heat * 255), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(crop, 1.0 - OVERLAY_ALPHA, colours, OVERLAY_ALPHA, 0.0)


def normalize_of(detector: BaseDetector) -> Mapping[str, Any] | None:
    """The normalisation of the first prepared column (an ensemble's: that of the member reading column 0)."""
    members, input_of = getattr(detector, "members", [None]), getattr(detector, "input_of", [0])
    member = detector if isinstance(detector, Detector) else members[input_of.index(0)]
    return member.bundle.preprocessing.get("normalize") if isinstance(member, Detector) else None


def can_gradcam(detector: BaseDetector) -> bool:
    return (
        isinstance(detector, Detector)
        and isinstance(detector.backend, TorchBackend)
        and hasattr(detector.backend.net, "attention")
    )


def gradcam(detector: Detector, tensor: torch.Tensor, predicted: int) -> np.ndarray:
    """Grad-CAM (h x w in [0, 1]) of one CHW input for the predicted class; runs on the model thread."""
    backend = detector.backend
    assert isinstance(backend, TorchBackend)
    batch = tensor.unsqueeze(0).to(backend.device).contiguous(memory_format=backend.memory_format)
    return explain_batch(backend.net, batch, [predicted])["gradcam"][0]


def explanation(
    detector: BaseDetector, tensor: torch.Tensor, attention: np.ndarray | None, cam: np.ndarray | None
) -> dict[str, str]:
    """`{"crop": PNG, "overlay": PNG, "method": ...}` (base64); no overlay when the model offers no map.

    An attention overlay adds `attention_range` ("min-max" of the raw map) and, when its locations are within
    10% of each other (the published channel gate on real faces, docs/attention.md), a `note` saying that the
    map selects no location. Values stay strings: the API's `explanation` is `dict[str, str]`.
    """
    crop = scored_crop(tensor, normalize_of(detector))
    record = {"crop": png_base64(crop)}
    heat, method = (attention, "attention") if attention is not None else (cam, "gradcam")
    if heat is not None:
        record.update(overlay=png_base64(overlay(crop, heat, relative=method == "attention")), method=method)
    else:
        record["method"] = "none: the model has no attention map and Grad-CAM needs the torch backend"
    if attention is not None:
        low, high = float(np.min(attention)), float(np.max(attention))
        record["attention_range"] = f"{low:.3g}-{high:.3g}"
        if is_flat(low, high):
            record["note"] = "flat attention map: every location is weighted within 10%, it selects none"
    return record
