"""Decode an image of an accepted format to 8-bit RGB, or fail with an error that names the file.

What decoding may cost is bounded before it starts (`decode_limits.py`): the pixel cap from the header, the
scan count of a JPEG, and the formats PIL may open."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfake_lightning.data.decode_limits import (
    FORMAT_NAMES,
    IMAGE_FORMATS,
    MAX_JPEG_SCANS,
    DecodeCostError,
    check_decode_cost,
    jpeg_scans,
)
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
    """An image file that cannot be decoded; the message names the path and the reason, `reason` says which
    check refused it (a code `prediction/image_check.py` maps to a row's error and the service's status)."""

    reason = "damaged"  # truncated data, a broken header or chunk


class ImageTooLargeError(BadImageError):
    """More pixels than the configured limit (decompression-bomb guard); the service answers 413."""

    reason = "too_many_pixels"


class EmptyImageError(BadImageError):
    """A file (or upload) of 0 bytes."""

    reason = "empty"


class NotAnImageError(BadImageError):
    """Bytes of no accepted format (text, random bytes, PostScript...)."""

    reason = "not_an_image"


class CostlyImageError(BadImageError):
    """An image whose decoding cost is not bounded by its pixels (`decode_limits.py`): refused before decoding."""

    reason = "decode_cost"


class UnreadableFileError(BadImageError):
    """The file itself cannot be read (permissions, a link loop, gone)."""

    reason = "unreadable"


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def to_rgb(image: Image.Image, owned: bool = False) -> Image.Image:
    """Convert L, LA, RGBA, P, CMYK, I;16 and friends to RGB (16-bit is scaled, not clipped), upright.

    `owned=True` (an image the caller decoded itself and will drop) turns it upright in place: `exif_transpose`
    otherwise returns a copy even of an image that needs no turn, 4 bytes a pixel more at the peak (0.2 GB for
    49 megapixels). A caller's own image is never changed."""
    if owned:
        ImageOps.exif_transpose(image, in_place=True)
    else:
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
    return (
        image if image.mode == "RGB" else image.convert("RGB")
    )  # convert() would copy: 4 bytes a pixel more


BAND_PIXELS = 1 << 22  # rows converted at a time by `rgb_array`


def rgb_array(image: Image.Image) -> np.ndarray:
    """`np.asarray(to_rgb(image))` of an image the caller decoded and owns, without its peak: numpy reads a PIL image through `tobytes()`, which holds the
    pixels twice more (its chunks, then their join). Copied band by band into one array, a decoded image peaks at
    its own 4 bytes a pixel plus the array's 3 (measured on a 49-megapixel PNG: 14 -> 7 bytes a pixel)."""
    image = to_rgb(image, owned=True)
    width, height = image.size
    if width * height <= BAND_PIXELS:
        return np.asarray(image, dtype=np.uint8)
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, BAND_PIXELS // width)
    for top in range(0, height, rows):
        out[top : top + rows] = np.asarray(image.crop((0, top, width, min(top + rows, height))))
    return out


def _decode_fast(data: bytes, path: str | Path, max_pixels: int) -> np.ndarray | None:
    """simplejpeg decode of a plain JPEG; None hands the file to PIL (EXIF, CMYK, odd or broken files)."""
    if not data.startswith(b"\xff\xd8") or b"Exif" in data[:65536]:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        if colourspace not in _FAST_COLOURSPACES:
            return None
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
            )
        if jpeg_scans(data) > MAX_JPEG_SCANS:
            return None  # PIL's path refuses it with the reason
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as err:
        if isinstance(err, BadImageError):
            raise
        return None  # let PIL decide: it decodes what libjpeg can and names the file when it cannot


def open_bounded(data: bytes, name: object, max_pixels: int) -> Image.Image:
    """`Image.open` of an accepted format whose decoding is bounded (`decode_limits.py`), size checked from the
    header; nothing is decoded yet. Every failure is a `BadImageError` naming `name`, of the type that says why
    (`EmptyImageError`, `NotAnImageError`, `ImageTooLargeError`, `CostlyImageError`; a damaged header: the base)."""
    if not data:
        raise EmptyImageError(f"{name}: empty file (0 bytes); expected an image ({FORMAT_NAMES})")
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (
        Image.DecompressionBombError
    ) as err:  # PIL's own cap, far above max_pixels: refused from the header
        raise ImageTooLargeError(f"{name}: DecompressionBombError: {err}") from None
    except UnidentifiedImageError:  # its own text names a BytesIO object, not the file
        raise NotAnImageError(
            f"{name}: not an image in an accepted format ({FORMAT_NAMES}; {len(data)} bytes)"
        ) from None
    except Exception as err:  # SyntaxError, ValueError, OSError... from a damaged header
        raise BadImageError(f"{name}: cannot decode image ({err.__class__.__name__}: {err})") from None
    try:
        if image.width * image.height > max_pixels:
            raise ImageTooLargeError(
                f"{name}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} pixels"
            )
        check_decode_cost(image, data, name)
    except DecodeCostError as err:
        image.close()
        raise CostlyImageError(str(err)) from None
    except BadImageError:
        image.close()
        raise
    return image


def decode_opened(image: Image.Image, name: object) -> np.ndarray:
    """Decode an image `open_bounded` opened to HxWx3 uint8 (a `BadImageError` naming `name` if its data is
    damaged); the image is closed after. Split from the opening so the service can hold the header's pixels
    from its decode budget before decoding."""
    with image:
        try:
            image.load()
            return rgb_array(image)
        except Exception as err:  # truncated data, broken chunks, DecompressionBombError on frames
            raise BadImageError(f"{name}: cannot decode image ({err.__class__.__name__}: {err})") from None


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS, decoder: str = "auto") -> np.ndarray:
    """Read `path` fully and return an HxWx3 uint8 array; every decoder gives the same pixels."""
    DataSettings.check_value("decoder", decoder)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise UnreadableFileError(f"{path}: cannot read file ({err.__class__.__name__}: {err})") from err
    return decode_rgb(data, path, max_pixels, decoder)


def decode_rgb(
    data: bytes, name: str | Path, max_pixels: int = MAX_PIXELS, decoder: str = "auto"
) -> np.ndarray:
    """`load_rgb` of a file's bytes already in memory (streamed shards, data/shard_datasets.py); `name` is the
    file's path, named in errors, whose extension picks the JPEG fast path as it does for a file."""
    DataSettings.check_value("decoder", decoder)
    if decoder == "simplejpeg" and simplejpeg is None:
        raise ValueError("data.decoder=simplejpeg needs the simplejpeg package (pip install simplejpeg)")
    try:
        if decoder != "pil" and simplejpeg is not None and str(name).lower().endswith((".jpg", ".jpeg")):
            image = _decode_fast(data, name, max_pixels)
            if image is not None:
                return image
        return decode_opened(open_bounded(data, name, max_pixels), name)
    except BadImageError:
        raise
    except Exception as err:  # the fast path's decoder: anything it raised that PIL's path would not
        raise BadImageError(f"{name}: cannot decode image ({err.__class__.__name__}: {err})") from err
