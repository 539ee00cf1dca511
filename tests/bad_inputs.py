"""Build a corpus of bad (and awkward-but-valid) inputs on disk, each with the behaviour the docs promise.

`build_file_corpus(folder)` writes one file (or link) per kind into `folder` and returns the kinds with what the
data module, the predict CLI and the service must do with each (docs/reliability.md has the same table).
`build_layout_cases(base)` writes whole dataset trees that are wrong as a layout (missing split, bad CSV...).
Everything is generated here, small and cheap: the 30000x30000 "bomb" is a 60-byte PNG header.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_lightning.bench.loadtest import png_claiming
from tests.hostile_files import eps_file, jpeg_in_tiff, jpeg_scan_bomb

# what each consumer does with a file
LOAD, SKIP, IGNORED = (
    "load",
    "skip",
    "ignored",
)  # data module: decoded and used | dropped, counted, logged | never listed
SCORE, ERROR = "score", "error"  # predict CLI: a row with p_fake | a row with the message in `error`
GOOD_SIZE = 72  # >= the default min_size (64) of predict and serve


@dataclass(frozen=True)
class BadInput:
    kind: str
    name: str  # file name inside the corpus folder (str: may hold a non-UTF-8 byte as a surrogate)
    data: str  # LOAD | SKIP | IGNORED
    predict: str | None  # SCORE | ERROR | None (not listed by a folder input)
    status: int | None  # HTTP status of POST /v1/predict with the file's bytes; None: not an upload case
    match: str = ""  # regex the error (skip log, predict row, HTTP detail) must contain


def _pixels(seed: int, size: int = GOOD_SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def good_jpeg(seed: int, size: int = GOOD_SIZE) -> bytes:
    return encode(Image.fromarray(_pixels(seed, size)), "JPEG", quality=90)


def _rgba() -> bytes:
    array = np.dstack([_pixels(1), np.full((GOOD_SIZE, GOOD_SIZE), 128, np.uint8)])
    return encode(Image.fromarray(array, "RGBA"), "PNG")


def _palette() -> bytes:
    return encode(Image.fromarray(_pixels(2)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def _palette_transparent() -> bytes:
    image = Image.fromarray(_pixels(3)).convert("P", palette=Image.Palette.ADAPTIVE)
    return encode(image, "PNG", transparency=0)


def _grey() -> bytes:
    return encode(Image.fromarray(_pixels(4)).convert("L"), "PNG")


def _grey_alpha() -> bytes:
    return encode(Image.fromarray(_pixels(5)).convert("LA"), "PNG")


def _cmyk() -> bytes:
    return encode(Image.fromarray(_pixels(6)).convert("CMYK"), "JPEG", quality=90)


def _png16() -> bytes:
    ramp = np.linspace(0, 65535, GOOD_SIZE * GOOD_SIZE).reshape(GOOD_SIZE, GOOD_SIZE).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def _float_tiff() -> bytes:
    return encode(Image.fromarray(_pixels(7)[:, :, 0].astype(np.float32), "F"), "TIFF")


def _exif_rotated() -> bytes:
    image = Image.fromarray(np.repeat(_pixels(8), 2, axis=0))  # 144 high, 72 wide
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees: 144 wide, 72 high
    return encode(image, "JPEG", exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_pixels(9 + i)).convert("P") for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _webp() -> bytes:
    return encode(Image.fromarray(_pixels(12)), "WEBP", quality=90)


def _multipage_tiff() -> bytes:
    pages = [Image.fromarray(_pixels(13 + i)) for i in range(3)]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _bmp() -> bytes:
    return encode(Image.fromarray(_pixels(16)), "BMP")


def _png(seed: int, size: int) -> bytes:
    return encode(Image.fromarray(_pixels(seed, size)), "PNG")


def _truncated() -> bytes:
    data = good_jpeg(17)
    return data[: len(data) // 2]


# (kind, file name, bytes maker, data, predict, status, match)
_FILE_KINDS: list[tuple[str, str, Callable[[], bytes], str, str, int, str]] = [
    ("zero-byte .jpg", "zero_byte.jpg", lambda: b"", SKIP, ERROR, 422, "empty|cannot decode|cannot identify"),
    ("truncated JPEG", "truncated.jpg", _truncated, SKIP, ERROR, 422, "truncated|cannot decode"),
    (
        "random bytes .jpg",
        "random_bytes.jpg",
        lambda: np.random.default_rng(0).bytes(4096),
        SKIP,
        ERROR,
        422,
        "",
    ),
    (
        "text file named .jpg",
        "text.jpg",
        lambda: b"just some text, not an image\n" * 20,
        SKIP,
        ERROR,
        422,
        "",
    ),
    ("RGBA PNG", "rgba.png", _rgba, LOAD, SCORE, 200, ""),
    ("palette PNG", "palette.png", _palette, LOAD, SCORE, 200, ""),
    ("palette PNG with transparency", "palette_transparent.png", _palette_transparent, LOAD, SCORE, 200, ""),
    ("greyscale PNG", "grey.png", _grey, LOAD, SCORE, 200, ""),
    ("greyscale + alpha PNG", "grey_alpha.png", _grey_alpha, LOAD, SCORE, 200, ""),
    ("CMYK JPEG", "cmyk.jpg", _cmyk, LOAD, SCORE, 200, ""),
    ("16-bit PNG", "png16.png", _png16, LOAD, SCORE, 200, ""),
    ("32-bit float TIFF", "float.tif", _float_tiff, LOAD, SCORE, 200, ""),
    ("1x1 image", "one_px.png", lambda: _png(18, 1), LOAD, ERROR, 422, "min_size"),
    ("10x10 image", "ten_px.png", lambda: _png(19, 10), LOAD, ERROR, 422, "min_size"),
    (
        "30000x30000 PNG (decompression bomb)",
        "bomb.png",
        lambda: png_claiming(30000, 30000),
        SKIP,
        ERROR,
        413,
        "30000x30000|exceeds|bomb",
    ),
    (
        "JPEG with 600 scans (scan bomb)",
        "scan_bomb.jpg",
        lambda: jpeg_scan_bomb(GOOD_SIZE, 600),
        SKIP,
        ERROR,
        422,
        "more than 500 scans",
    ),
    ("JPEG-compressed TIFF", "jpeg_in.tif", jpeg_in_tiff, SKIP, ERROR, 422, "JPEG-compressed TIFF"),
    ("EPS (PostScript) named .jpg", "postscript.jpg", eps_file, SKIP, ERROR, 422, "accepted format"),
    ("EXIF-rotated JPEG", "exif_rotated.jpg", _exif_rotated, LOAD, SCORE, 200, ""),
    ("animated GIF", "animated.gif", _animated_gif, LOAD, SCORE, 200, ""),
    ("WebP", "image.webp", _webp, LOAD, SCORE, 200, ""),
    ("multi-page TIFF", "multipage.tiff", _multipage_tiff, LOAD, SCORE, 200, ""),
    ("BMP", "image.bmp", _bmp, LOAD, SCORE, 200, ""),
    ("upper-case extension .JPG", "UPPER.JPG", lambda: good_jpeg(20), LOAD, SCORE, 200, ""),
    ("JPEG bytes named .png", "jpeg_named.png", lambda: good_jpeg(21), LOAD, SCORE, 200, ""),
    ("PNG bytes named .jpg", "png_named.jpg", lambda: _png(22, GOOD_SIZE), LOAD, SCORE, 200, ""),
    ("non-UTF-8 file name", os.fsdecode(b"caf\xe9_latin1.jpg"), lambda: good_jpeg(23), LOAD, SCORE, None, ""),
    ("hidden file", ".hidden.jpg", lambda: good_jpeg(24), IGNORED, None, None, ""),
    ("not an image extension", "notes.txt", lambda: b"a README beside the images", IGNORED, None, None, ""),
]


def unreadable_expectation(path: Path) -> tuple[str, str]:
    """(data, predict) for a chmod-000 file: as root it is still readable (root ignores permissions)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        return SKIP, ERROR
    return LOAD, SCORE


def build_file_corpus(folder: Path) -> list[BadInput]:
    """Write every per-file kind into `folder` (flat) and return them; the caller adds good images beside."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus: list[BadInput] = []
    for kind, name, make, data, predict, status, match in _FILE_KINDS:
        (folder / name).write_bytes(make())
        corpus.append(BadInput(kind, name, data, predict, status, match))
    # a directory whose name looks like an image: walked into, never opened as a file
    (folder / "folder.jpg").mkdir()
    corpus.append(BadInput("directory named .jpg", "folder.jpg", IGNORED, None, None))
    # a symlink loop in the tree: links are not followed, so the walk ends and lists nothing twice
    os.symlink("..", folder / "loop", target_is_directory=True)
    corpus.append(BadInput("symlink loop (directory)", "loop", IGNORED, None, None))
    # two file links pointing at each other: listed by name, fail to open (ELOOP)
    os.symlink("link_b.jpg", folder / "link_a.jpg")
    os.symlink("link_a.jpg", folder / "link_b.jpg")
    for name in ("link_a.jpg", "link_b.jpg"):
        corpus.append(
            BadInput("symlink loop (file)", name, SKIP, ERROR, None, "symbolic links|cannot decode")
        )
    unreadable = folder / "unreadable.jpg"
    unreadable.write_bytes(good_jpeg(25))
    unreadable.chmod(0)
    data, predict = unreadable_expectation(unreadable)
    corpus.append(
        BadInput("unreadable file (chmod 000)", unreadable.name, data, predict, None, "Permission denied")
    )
    return corpus


def add_good_images(folder: Path, count: int, seed: int, prefix: str = "good") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}_{i}.jpg"
        path.write_bytes(good_jpeg(1000 + seed + i))
        paths.append(path)
    return paths


def split_tree(base: Path, per_class: int = 2, splits: tuple[str, ...] = ("train", "valid", "test")) -> Path:
    """root/{splits}/{real,fake}/good_*.jpg with distinct images everywhere."""
    seed = 0
    for split in splits:
        for cls in ("real", "fake"):
            add_good_images(base / split / cls, per_class, seed)
            seed += 100
    return base


def write_140k_csvs(root: Path, rows: dict[str, list[dict[str, str]]], columns: list[str]) -> None:
    """Kaggle-style CSVs beside the splits (the layout reader also accepts them there)."""
    for split, split_rows in rows.items():
        with (root / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(split_rows)


def csv_rows_for(root: Path) -> dict[str, list[dict[str, str]]]:
    """One CSV row per image of a split tree; Kaggle's label: 1 = real, 0 = fake."""
    rows: dict[str, list[dict[str, str]]] = {}
    for split in ("train", "valid", "test"):
        rows[split] = [
            {
                "id": path.name,
                "label": "1" if cls == "real" else "0",
                "label_str": cls,
                "path": f"{split}/{cls}/{path.name}",
            }
            for cls in ("real", "fake")
            for path in sorted((root / split / cls).glob("*.jpg"))
        ]
    return rows
