"""Decode any PIL-readable image to 8-bit RGB, or fail with an error that names the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 50_000_000  # refuse decompression bombs well before they exhaust memory


class BadImageError(ValueError):
    """An image file that cannot be decoded; the message names the path and the reason."""


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert L, LA, RGBA, P, CMYK, I;16 and friends to RGB (16-bit is scaled, not clipped)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (0, 0, 0))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read `path` fully and return an HxWx3 uint8 array."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                raise BadImageError(
                    f"{path}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} pixels"
                )
            image.load()
            return np.asarray(to_rgb(image), dtype=np.uint8)
    except BadImageError:
        raise
    except (
        Exception
    ) as err:  # PIL raises many types: OSError, SyntaxError, ValueError, DecompressionBombError
        raise BadImageError(f"{path}: cannot decode image ({err.__class__.__name__}: {err})") from err
