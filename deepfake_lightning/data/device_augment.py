"""Train augmentation and normalisation of uint8 batches on the model's device (`data.augment_on=device`).

Why: on a GPU the CPU workers are the limit (decode + augment is ~400-800 images/s per core, the network takes
tens of thousands). With `augment_on=device` the workers only decode and size the image and hand over uint8
tensors (a quarter of the float bytes to copy); kornia then applies the geometric, colour, erasing and
grayscale groups to the whole batch at once, with independent random parameters per image. The JPEG and blur
groups stay in the workers (before the device groups: their order differs from `augment_on=cpu`). Validation
and test loaders are unchanged (the CPU eval transform), so calibration, robustness and inference see the
same inputs either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

DEVICE_GROUPS = ("geometric", "colour", "erasing", "grayscale")
PERSPECTIVE_SCALE = 3.2  # kornia's uniform corner offset with the mean of albumentations' normal one


def _kornia() -> Any:
    try:
        import kornia.augmentation as K  # lazy: optional extra [device-aug]
    except ImportError as err:
        raise ImportError(
            "data.augment_on=device needs kornia: pip install 'deepfake_lightning[device-aug]' "
            "(or set data.augment_on=cpu)"
        ) from err
    return K


def _kornia_ops(augment: Mapping[str, Any]) -> list[nn.Module]:
    K = _kornia()

    ops: list[nn.Module] = []
    geometric = augment.get("geometric") or {}
    if geometric.get("enabled", False):
        ops += [
            K.RandomHorizontalFlip(p=geometric["hflip_p"]),
            K.RandomAffine(
                degrees=geometric["rotate_limit"],
                translate=(geometric["translate"], geometric["translate"]),
                scale=tuple(geometric["scale"]),
                padding_mode="reflection",
                p=geometric["affine_p"],
            ),
            K.RandomPerspective(
                distortion_scale=min(1.0, PERSPECTIVE_SCALE * geometric["perspective_scale"]),
                p=geometric["perspective_p"],
            ),
        ]
    colour = augment.get("colour") or {}
    if colour.get("enabled", False):
        ops.append(
            K.ColorJitter(
                colour["brightness"], colour["contrast"], colour["saturation"], colour["hue"], p=colour["p"]
            )
        )
    erasing = augment.get("erasing") or {}
    if erasing.get("enabled", False):  # one hole per image; its side is hole_size_range of the image side
        low, high = erasing["hole_size_range"]
        ops.append(
            K.RandomErasing(scale=(low * low, high * high), ratio=(0.5, 2.0), value=0.0, p=erasing["p"])
        )
    grayscale = augment.get("grayscale") or {}
    if grayscale.get("enabled", False):
        ops.append(K.RandomGrayscale(p=grayscale["p"]))
    return ops


class DeviceAugment(nn.Module):
    """uint8 NCHW train batch -> augmented, normalised float batch (the eval loaders stay on the CPU path)."""

    def __init__(self, augment: Mapping[str, Any], normalize: Mapping[str, Any]) -> None:
        super().__init__()
        ops = _kornia_ops(augment)
        self.augment = _kornia().AugmentationSequential(*ops) if ops else None
        self.register_buffer("mean", torch.tensor(normalize["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(normalize["std"]).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"DeviceAugment expects uint8 images (augment_on=device), got {images.dtype}")
        batch = images.float().div_(255.0)
        if self.augment is not None and len(batch):
            batch = self.augment(batch).clamp_(0.0, 1.0)
        return (batch - self.mean) / self.std
