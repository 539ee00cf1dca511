"""Turn whatever a caller hands the detector (paths, PIL images, arrays, uploaded bytes) into HxWx3 uint8 RGB.

File paths and bytes go through prediction's one decode step (`prediction/image_check.py`, `data.images`'
decoders) and PIL images through `to_rgb`, exactly as in training, so a 16-bit PNG, a CMYK JPEG or a rotated
phone photo are scored the same way everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepfake_lightning.data.images import (
    MAX_PIXELS,
    BadImageError,
    ImageTooLargeError,
    is_image_file,
    to_rgb,
)
from deepfake_lightning.prediction.image_check import decode_checked

ImageInput = str | Path | Image.Image | np.ndarray | bytes


class InputNotFoundError(FileNotFoundError):
    """`input=` names no file, folder or glob match."""


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """HxW grey, HxWx1, HxWx3 or HxWx4 arrays of uint8/uint16/float; routed through PIL so rules match files."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise BadImageError(f"{name}: array of shape {array.shape}; expected HxW, HxWx3 or HxWx4")
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim == 2:
        return np.asarray(to_rgb(Image.fromarray(array)), dtype=np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise BadImageError(f"{name}: float array contains NaN or inf")
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0  # [0, 1] floats or [0, 255] floats
        array = np.clip(array * scale + 0.5, 0, 255).astype(np.uint8)
    if array.dtype != np.uint8:
        raise BadImageError(f"{name}: array dtype {array.dtype}; expected uint8, uint16 (grey) or float")
    return np.asarray(to_rgb(Image.fromarray(array)), dtype=np.uint8)


def as_rgb_array(image: ImageInput, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any supported input -> HxWx3 uint8; errors are `BadImageError`s naming the input."""
    if isinstance(image, (str, Path, bytes)):
        return decode_checked(image, name, max_pixels)
    if isinstance(image, Image.Image):
        if image.width * image.height > max_pixels:
            raise ImageTooLargeError(
                f"{name or '<PIL image>'}: {image.width}x{image.height} pixels exceeds {max_pixels}"
            )
        return np.asarray(to_rgb(image), dtype=np.uint8)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, name or "<array>")
    raise BadImageError(f"{name or '<input>'}: unsupported input type {type(image).__name__}")


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / name for name in sorted(filenames) if is_image_file(name))
    return found


def expand_inputs(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """PATH (any file, even with an odd extension), DIR (image files, recursively) or GLOB -> sorted paths.

    A single file is taken whatever its name, so its decode error lands in its row; folders and globs keep
    only image extensions so a stray README is not reported as a broken image.
    """
    if not isinstance(spec, (str, Path)):
        return [path for item in spec for path in expand_inputs(item)]
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        return _walk(path)
    matches = _glob(path)
    files = [p for p in matches if not p.is_dir() and is_image_file(p.name)]
    for folder in (p for p in matches if p.is_dir()):
        files.extend(_walk(folder))
    if not matches:
        raise InputNotFoundError(f"input={str(spec)!r}: no such file or folder, and no glob match")
    return list(dict.fromkeys(files))  # `a/**` matches a folder and its subfolders: list each file once


_MAGIC = re.compile(r"[*?[]")


def _glob(pattern: Path) -> list[Path]:
    """`glob.glob(recursive=True)` except that `**` never enters a symlinked folder (pathlib's rule): a link
    loop (`loop -> ..`) would otherwise list the tree ~40 times over. Hidden folders are skipped, as in `_walk`."""
    parts = pattern.parts
    fixed = next((i for i, part in enumerate(parts) if _MAGIC.search(part)), len(parts))
    if fixed == len(parts):
        return []  # no wildcard, and neither a file nor a folder
    base = Path(*parts[:fixed])
    matches = base.glob(str(Path(*parts[fixed:])))
    return sorted(p for p in matches if not any(part.startswith(".") for part in p.relative_to(base).parts))


def as_list(images: Any) -> list[Any]:
    """One input or a sequence of inputs -> list (a 3-D array is one image, a 4-D array a batch)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)  # NxHxWxC batch
    if isinstance(images, (str, Path, bytes, Image.Image, np.ndarray)):
        return [images]
    return list(images)
