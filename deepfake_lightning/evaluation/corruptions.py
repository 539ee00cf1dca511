"""Image corruptions for robustness tests, applied to the decoded uint8 RGB image before the eval transform.

Small cv2/numpy functions rather than albumentations: each severity is one exact parameter (a JPEG quality,
a blur sigma), not a range to sample from, and the only randomness (noise) is seeded per image from the
image's own bytes, so results do not depend on loader order, batch size or worker count.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

Corruption = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def jpeg(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (1-100; lower is harsher)."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise RuntimeError(f"JPEG encoding at quality {quality} failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def downscale(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Shrink by ``factor`` (area averaging) and scale back up (bilinear): the detail of a low-res upload."""
    height, width = image.shape[:2]
    small = cv2.resize(
        image, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel size derived from sigma)."""
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))


def noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise with ``std`` as a fraction of the 0-255 range (0.05 = 12.75 grey levels)."""
    noisy = image.astype(np.float32) / 255.0 + rng.normal(0.0, float(std), image.shape).astype(np.float32)
    return (np.clip(noisy, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def grayscale(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Blend towards the luma image (``amount=1``: fully grey, still 3 channels)."""
    gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    mixed = (1.0 - float(amount)) * image.astype(np.float32) + float(amount) * gray.astype(np.float32)
    return mixed.round().astype(np.uint8)


CORRUPTIONS: dict[str, Corruption] = {
    "jpeg": jpeg,
    "downscale": downscale,
    "blur": blur,
    "noise": noise,
    "grayscale": grayscale,
}


def corrupt(image: np.ndarray, name: str, severity: float, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity``; the noise generator is seeded by ``seed`` and the pixels."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; allowed {sorted(CORRUPTIONS)}")
    rng = np.random.default_rng([seed, zlib.crc32(np.ascontiguousarray(image).tobytes())])
    return CORRUPTIONS[name](np.ascontiguousarray(image), severity, rng)


class CorruptedTransform:
    """Picklable (DataLoader workers) ``image -> transform(corrupt(image))``; ``name="clean"`` skips the corruption."""

    def __init__(
        self, name: str, severity: float | None, transform: Callable[[np.ndarray], Any], seed: int = 0
    ) -> None:
        if name != "clean" and name not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {name!r}; allowed clean, {', '.join(sorted(CORRUPTIONS))}")
        self.name = name
        self.severity = severity
        self.transform = transform
        self.seed = seed

    def __call__(self, image: np.ndarray) -> Any:
        if self.name != "clean":
            image = corrupt(image, self.name, float(self.severity), self.seed)
        return self.transform(image)
