"""Albumentations 2.x pipelines built from config; every augmentation group is switchable."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from deepfake_lightning.utils.config_schema import DataSettings

PREPROCESS_MODES = ("resize", "center_crop")


def _reencode(quality: int | None) -> list[A.BasicTransform]:
    """Re-encode every image at one JPEG quality so a class-dependent source quality is no shortcut."""
    if quality is None:
        return []
    return [A.ImageCompression(quality_range=(quality, quality), p=1.0)]


def _to_size(image_size: int, preprocess: str) -> list[A.BasicTransform]:
    """Deterministic route to `image_size`: resize the whole image, or cut the centre at native resolution."""
    if preprocess == "resize":
        return [A.Resize(image_size, image_size, interpolation=cv2.INTER_AREA)]
    if preprocess == "center_crop":
        return [
            A.PadIfNeeded(image_size, image_size, border_mode=cv2.BORDER_CONSTANT),
            A.CenterCrop(image_size, image_size),
        ]
    raise ValueError(f"data.preprocess={preprocess!r}: allowed {PREPROCESS_MODES}")


def _geometric(cfg: Mapping[str, Any]) -> list[A.BasicTransform]:
    return [
        A.HorizontalFlip(p=cfg["hflip_p"]),
        A.Affine(
            rotate=(-cfg["rotate_limit"], cfg["rotate_limit"]),
            scale=tuple(cfg["scale"]),
            translate_percent=(-cfg["translate"], cfg["translate"]),
            border_mode=cv2.BORDER_REFLECT_101,
            p=cfg["affine_p"],
        ),
        A.Perspective(scale=(0.0, cfg["perspective_scale"]), p=cfg["perspective_p"]),
    ]


def _colour(cfg: Mapping[str, Any]) -> list[A.BasicTransform]:
    return [
        A.ColorJitter(
            brightness=cfg["brightness"],
            contrast=cfg["contrast"],
            saturation=cfg["saturation"],
            hue=cfg["hue"],
            p=cfg["p"],
        )
    ]


def _erasing(cfg: Mapping[str, Any]) -> list[A.BasicTransform]:
    return [
        A.CoarseDropout(
            num_holes_range=tuple(cfg["num_holes_range"]),
            hole_height_range=tuple(cfg["hole_size_range"]),
            hole_width_range=tuple(cfg["hole_size_range"]),
            fill=0,
            p=cfg["p"],
        )
    ]


def _grayscale(cfg: Mapping[str, Any]) -> list[A.BasicTransform]:
    return [A.ToGray(num_output_channels=3, p=cfg["p"])]


def _jpeg(cfg: Mapping[str, Any]) -> list[A.BasicTransform]:
    return [A.ImageCompression(quality_range=tuple(cfg["quality_range"]), p=cfg["p"])]


def _blur(cfg: Mapping[str, Any]) -> list[A.BasicTransform]:
    return [A.GaussianBlur(sigma_limit=tuple(cfg["sigma_range"]), p=cfg["p"])]


AUGMENTATION_GROUPS = {
    "geometric": _geometric,
    "colour": _colour,
    "erasing": _erasing,
    "grayscale": _grayscale,
    "jpeg": _jpeg,
    "blur": _blur,
}


def _finish(normalize: Mapping[str, Any] | None) -> list[A.BasicTransform]:
    """Normalised float CHW, or uint8 CHW (`normalize=None`) for `augment_on=device` (DeviceAugment)."""
    if normalize is None:
        return [ToTensorV2()]
    return [A.Normalize(mean=tuple(normalize["mean"]), std=tuple(normalize["std"])), ToTensorV2()]


class _Pipeline:
    """Picklable callable (DataLoader workers) mapping an HxWx3 uint8 array to a CHW float tensor."""

    def __init__(self, compose: A.Compose) -> None:
        self.compose = compose

    def __call__(self, image, seed: int | None = None):  # noqa: ANN001, ANN204 - numpy in, tensor out
        if seed is not None:  # one sample's augmentations from its own seed (data/epoch_sampler.py says why)
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return self.compose(image=image)["image"]


def build_eval_transform(
    image_size: int,
    preprocess: str,
    normalize: Mapping[str, Any] | None,
    reencode_jpeg_quality: int | None = None,
    face_crop: Mapping[str, Any] | None = None,
) -> _Pipeline:
    """Deterministic; `build_eval_transform(**module.hparams["preprocessing"])` rebuilds it for inference.

    `face_crop` (the record of `data.face_crop`) is accepted and not applied here: faces are cut before the
    transform, by the data module (data/face_crops.py) or inference's face pipeline (inference/face_regions.py).
    """
    steps = _reencode(reencode_jpeg_quality) + _to_size(image_size, preprocess)
    return _Pipeline(A.Compose(steps + _finish(normalize)))


def build_train_transform(
    image_size: int,
    preprocess: str,
    augment: Mapping[str, Any],
    normalize: Mapping[str, Any] | None,
    reencode_jpeg_quality: int | None = None,
    skip_groups: Collection[str] = (),
) -> _Pipeline:
    """`augment.random_crop=true` replaces the deterministic route with a random native-resolution crop.

    `skip_groups` are left to the device (`augment_on=device`), which then also normalises (`normalize=None`).
    """
    DataSettings.check_value("augment", augment)  # unknown groups and keys, probabilities, ranges
    steps = _reencode(reencode_jpeg_quality)
    if augment.get("random_crop", False):
        steps += [
            A.PadIfNeeded(image_size, image_size, border_mode=cv2.BORDER_CONSTANT),
            A.RandomCrop(image_size, image_size),
        ]
    else:
        steps += _to_size(image_size, preprocess)
    for name, factory in AUGMENTATION_GROUPS.items():
        group = augment.get(name)
        if group and group.get("enabled", False) and name not in skip_groups:
            steps += factory(group)
    return _Pipeline(A.Compose(steps + _finish(normalize)))
