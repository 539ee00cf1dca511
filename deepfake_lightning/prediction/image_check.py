"""The one decode-and-check step of prediction: a file or its bytes -> a checked RGB image, or a typed refusal.

Image files (`files.py`), `Detector.predict` on paths and bytes, and the service's uploads all decode here, and
every prepared image (a video frame too) passes `check_min_size`. A refusal is a `BadImageError` whose type
says which check refused it (`reason`: one of `REFUSAL_STATUS`) and whose message is one line naming the file
and what was expected. One mapping turns it into what a user sees: `refusal_fields` the row of a predictions
file, a frame row or a batch entry (`error`, and `reason` where the format has room for it), `refusal_response`
the service's HTTP status and JSON. So the same bad file reads the same in a CSV row and an HTTP answer.

Decoding itself is `data/images.py`'s, as in training (the same pixels, limits and messages): paths and bytes
through `decode_rgb` (simplejpeg for plain JPEGs, PIL otherwise), and for the service's budgeted path the
header first (`open_checked`: size known before any pixel is decoded) and the pixels after (`decode_header`).

No runtime import of `inference/`: `inference/detector.py` and `inference/inputs.py` build on this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepfake_lightning.data.images import (
    MAX_PIXELS,
    BadImageError,
    decode_opened,
    decode_rgb,
    load_rgb,
    open_bounded,
)

DEFAULT_MIN_SIZE = 64
"""Too-small policy: images whose shorter side is below this many pixels are refused, never upscaled."""

# every reason an image is refused, and the service's answer to it: 413 where a limit was passed, else 422
REFUSAL_STATUS = {
    "unreadable": 422,  # the file cannot be read (permissions, a link loop)
    "empty": 422,  # 0 bytes
    "not_an_image": 422,  # no accepted format
    "damaged": 422,  # truncated data, a broken header or chunk
    "decode_cost": 422,  # a JPEG scan bomb, a JPEG-compressed TIFF: refused before decoding
    "too_many_pixels": 413,  # above max_pixels, read from the header
    "too_small": 422,  # shorter side below min_size
    "failed": 422,  # anything else preparing it raised (a transform failing on an odd image)
}


class ImageTooSmallError(BadImageError):
    """Shorter side below `min_size`; a score on a 20-px thumbnail is noise, so it is refused."""

    reason = "too_small"


class PrepareError(BadImageError):
    """Preparing a decoded image failed for another reason (the message names the image and the error)."""

    reason = "failed"


def check_min_size(image: np.ndarray, min_size: int, name: str) -> None:
    height, width = image.shape[:2]
    if min(height, width) < min_size:
        raise ImageTooSmallError(
            f"{name}: image is {width}x{height} px; the shorter side must be at least min_size={min_size} px"
        )


def decode_checked(
    source: bytes | str | Path, name: str | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """A path (read whole) or a file's bytes -> HxWx3 uint8; every failure a `BadImageError` naming the file."""
    if isinstance(source, (str, Path)):
        return load_rgb(source, max_pixels=max_pixels)
    return decode_rgb(source, name or "<bytes>", max_pixels)


def open_checked(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The header of an upload, checked (empty, format, pixels, decode cost); nothing decoded yet."""
    return open_bounded(data, name, max_pixels)


def decode_header(image: Image.Image, name: str) -> np.ndarray:
    """The pixels of an image `open_checked` opened (closed after)."""
    return decode_opened(image, name)


def as_refusal(err: Exception, name: str) -> BadImageError:
    """Any error preparing an image as a typed refusal: a `BadImageError` as it is, anything else `failed`."""
    if isinstance(err, BadImageError):
        return err
    return PrepareError(f"{name}: {err.__class__.__name__}: {err}")


def refusal_fields(err: BadImageError) -> dict[str, Any]:
    """A refused image's row fields (file rows, frame rows, batch entries): no score, the message in `error`."""
    return {"p_fake": None, "label": None, "error": str(err), "reason": err.reason}


def refusal_response(err: BadImageError) -> tuple[int, dict[str, str]]:
    """The service's answer to a refused upload: the status of its reason and `{"detail", "reason"}`."""
    return REFUSAL_STATUS[err.reason], {"detail": str(err), "reason": err.reason}
