"""Decode any PIL-readable image to 8-bit RGB, or fail with an error that names the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from deepfake_lightning.utils.config_schema import DataSettings

try:  # libjpeg-turbo through a thin binding: ~2-3x faster than PIL's decode + EXIF handling (docs/benchmarks.md)
    import simplejpeg
except ImportError:  # pragma: no cover - optional at import time, required by `decoder="simplejpeg"`
    simplejpeg = None

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 50_000_000  # refuse decompression bombs well before they exhaust memory
# decoder: auto = simplejpeg for plain YCbCr/grey JPEGs without EXIF (pixel-identical to PIL), PIL otherwise
_FAST_COLOURSPACES = ("YCbCr", "Gray")


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


def _decode_fast(data: bytes, path: str | Path, max_pixels: int) -> np.ndarray | None:
    """simplejpeg decode of a plain JPEG; None hands the file to PIL (EXIF, CMYK, odd or broken files)."""
    if not data.startswith(b"\xff\xd8") or b"Exif" in data[:65536]:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        if colourspace not in _FAST_COLOURSPACES:
            return None
        if width * height > max_pixels:
            raise BadImageError(f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as err:
        if isinstance(err, BadImageError):
            raise
        return None  # let PIL decide: it decodes what libjpeg can and names the file when it cannot


def _load_pil(path: str | Path, max_pixels: int) -> np.ndarray:
    with Image.open(path) as image:
        if image.width * image.height > max_pixels:
            raise BadImageError(
                f"{path}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} pixels"
            )
        image.load()
        return np.asarray(to_rgb(image), dtype=np.uint8)


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS, decoder: str = "auto") -> np.ndarray:
    """Read `path` fully and return an HxWx3 uint8 array; every decoder gives the same pixels."""
    DataSettings.check_value("decoder", decoder)
    if decoder == "simplejpeg" and simplejpeg is None:
        raise ValueError("data.decoder=simplejpeg needs the simplejpeg package (pip install simplejpeg)")
    try:
        if decoder != "pil" and simplejpeg is not None and str(path).lower().endswith((".jpg", ".jpeg")):
            with open(path, "rb") as handle:
                image = _decode_fast(handle.read(), path, max_pixels)
            if image is not None:
                return image
        return _load_pil(path, max_pixels)
    except BadImageError:
        raise
    # PIL raises many types: OSError, SyntaxError, ValueError, DecompressionBombError
    except Exception as err:
        if _is_empty(path):
            raise BadImageError(f"{path}: cannot decode image (empty file, 0 bytes)") from err
        raise BadImageError(f"{path}: cannot decode image ({err.__class__.__name__}: {err})") from err


def _is_empty(path: str | Path) -> bool:
    """Checked only after a decode failed, so good files pay no extra stat."""
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False
