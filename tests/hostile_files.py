"""Hostile uploads, generated (never committed as binaries): each costs the server far more than its size
unless a limit holds. `tests/test_service_hostile.py` sends them to a real server; the small ones also join the
bad-input corpus (`tests/bad_inputs.py`), so training and `predict` meet them too.

- `jpeg_scan_bomb`: a progressive JPEG whose last scan is repeated (`scans` in all). Each scan makes a decoder
  walk every block of the image again: 7000x7000 with 4,000 scans is 136 KB and took 14-16 s of server CPU.
- `flat_png`: a single-colour PNG, a few dozen KB for 49 megapixels; decoded, it holds ~150 MB of RGB.
- `ffconcat`, `hls_playlist`: text that FFmpeg would follow to other files if it were allowed to guess the
  format of an upload.
"""

from __future__ import annotations

import io

from PIL import Image

SOS, DHT, EOI = b"\xff\xda", b"\xff\xc4", b"\xff\xd9"


def jpeg_scan_bomb(side: int, scans: int) -> bytes:
    """A valid progressive greyscale JPEG of side x side pixels with `scans` scans: the encoder's 6, then its last
    scan (with the Huffman table before it) repeated. Decoders accept the repeats with a warning."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last_scan = data.rindex(SOS)
    table = data.rfind(DHT, 0, last_scan)
    start = table if table != -1 else last_scan
    end = data.rindex(EOI)
    own = data.count(SOS)  # a flat image's entropy data holds no 0xFF 0xDA: this is the encoder's scan count
    return data[:end] + data[start:end] * (scans - own) + EOI


def flat_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 110, 100)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_in_tiff(side: int = 72) -> bytes:
    """A TIFF whose strips are JPEG-compressed: a JPEG decoder behind a TIFF header (refused)."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (90, 80, 70)).save(buffer, "TIFF", compression="jpeg")
    return buffer.getvalue()


def eps_file() -> bytes:
    """An Encapsulated PostScript header: PIL would hand it to Ghostscript to render (refused as a format)."""
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 72 72\n0 0 moveto 72 72 lineto stroke\nshowpage\n"


def ffconcat(target: str) -> bytes:
    """An FFmpeg concat list naming a file on the server's disk."""
    return f"ffconcat version 1.0\nfile '{target}'\nduration 1\n".encode()


def hls_playlist(target: str) -> bytes:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n".encode()
