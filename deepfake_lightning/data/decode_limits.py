"""What decoding one image may cost, judged before the decoder runs; training (`load_rgb`), `predict` and the
service apply the same rules.

The pixel cap (`max_pixels`, from the header) bounds memory, and for most formats time too: PNG, WebP, GIF and
BMP decoders do work in proportion to the pixels they write. Two things are not bounded by pixels:

- **JPEG scans.** A progressive JPEG may hold any number of scans, and a decoder walks every block of the image
  once per scan. A 136 KB file of 7000x7000 pixels with 4,000 empty scans took 29 s to decode; a 10 MiB file
  could hold a million. libjpeg-turbo's answer is a scan limit (`TJPARAM_SCANLIMIT` in TurboJPEG 3, `-maxscans`
  in djpeg; its own fuzz targets set 500), which neither PIL nor simplejpeg exposes. So the scans are counted
  here, from the markers, before any decoder sees the file: segments are skipped by their length and the
  entropy-coded data is searched for the next marker by a regular expression (C speed). An encoder writes at most
  a few dozen scans (libjpeg's progressive default is 10 for a colour image), so `MAX_JPEG_SCANS = 500` refuses
  no real photo.
- **Other formats.** PIL can open some 40 formats, among them EPS (which runs Ghostscript), JPEG 2000 and
  JPEG-compressed TIFF, whose cost is not that of their pixels. Only the formats a face data set or a phone
  writes are opened (`IMAGE_FORMATS`, passed to `Image.open(formats=...)`), and a TIFF only when its
  compression is not JPEG.
"""

from __future__ import annotations

import re

from PIL import Image

MAX_JPEG_SCANS = 500
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # PIL opens multi-picture (MPO) files as JPEG
FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"
JPEG_IN_TIFF = ("jpeg", "tiff_jpeg")
# 0xFF followed by a marker code: not 0x00 (a stuffed byte in entropy-coded data), not RST0-7, not 0xFF (fill)
_MARKER = re.compile(rb"\xff[\xc0-\xcf\xd8-\xfe]")
_EOI, _SOS = 0xD9, 0xDA
_STANDALONE = (0xD8,)  # SOI has no length field (RSTn and TEM are never matched)


class DecodeCostError(ValueError):
    """An image whose decoding cost is not bounded by its pixels (a JPEG scan bomb, a format refused)."""


def jpeg_scans(data: bytes, limit: int = MAX_JPEG_SCANS) -> int:
    """Scans (SOS segments) in the first image of a JPEG file, counted up to `limit + 1` (enough to refuse).

    Raises `DecodeCostError` past `4 * limit + 64` other segments (a progressive file has a Huffman table or two
    per scan, and a few tables and APPn segments besides): walking them is this function's own cost."""
    pos, scans, segments, max_segments = 2, 0, 0, 4 * limit + 64
    while (found := _MARKER.search(data, pos)) is not None:
        code, pos = data[found.start() + 1], found.end()
        if code == _EOI:
            break
        if code in _STANDALONE:
            continue
        if code == _SOS:
            scans += 1
            if scans > limit:
                break
        else:
            segments += 1
            if segments > max_segments:
                raise DecodeCostError(f"more than {max_segments} JPEG segments besides its scans")
        pos += int.from_bytes(data[pos : pos + 2], "big")  # skip the segment (for SOS, its header)
    return scans


def check_decode_cost(image: Image.Image, data: bytes, name: object, max_scans: int = MAX_JPEG_SCANS) -> None:
    """After `Image.open` read the header, before any pixel is decoded; `data` is the file's bytes."""
    if image.format in ("JPEG", "MPO"):
        try:
            scans = jpeg_scans(data, max_scans)
        except DecodeCostError as err:
            raise DecodeCostError(f"{name}: {err}; refused before decoding") from None
        if scans > max_scans:
            raise DecodeCostError(
                f"{name}: JPEG with more than {max_scans} scans (a real encoder writes a few dozen); refused "
                "before decoding, as its decode time grows with every scan"
            )
    elif image.format == "TIFF" and image.info.get("compression") in JPEG_IN_TIFF:
        raise DecodeCostError(f"{name}: JPEG-compressed TIFF is not accepted (its decode cost is unbounded)")
