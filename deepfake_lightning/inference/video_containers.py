"""Which container an uploaded video may be: told from its first bytes, before FFmpeg sees it.

FFmpeg guesses a file's format by probing it against every demuxer it has, and some demuxers read other files or
URLs named inside the upload: `concat` (an ffconcat list of `file '...'` lines: the server would decode a file of
its own disk and answer 200), `hls` (an m3u8 playlist), `image2` (file-name patterns), and any demuxer given a
protocol such as `subfile:` or `http:`. So the service never lets FFmpeg guess. An upload is identified here by its
magic bytes as one of a few real container formats, opened with that demuxer forced (`av.open(format=...)`) and
with FFmpeg's protocol whitelist reduced to `file` (the upload's own temporary file). Anything else is refused
with 415 before FFmpeg opens it, with one message whatever the file holds, so an upload cannot ask whether a
file exists on the server either.

The allowlist: ISO base media (MP4, MOV, M4V, 3GP: the `mov` demuxer, whose external data references are off
by default), Matroska and WebM (`matroska`), and AVI (`avi`). These are what cameras, phones, browsers
(MediaRecorder writes WebM) and editing tools write; none of their demuxers opens another file.
"""

from __future__ import annotations

# demuxer -> what a person calls it
CONTAINERS = {"mov": "MP4/MOV", "matroska": "MKV/WebM", "avi": "AVI"}
# first box types of an ISO base media or QuickTime file (`ftyp` in every file written since 2001)
ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
OPEN_OPTIONS = {"protocol_whitelist": "file"}  # no demuxer may open anything but the upload itself
SNIFF_BYTES = 12


class UnsupportedContainerError(ValueError):
    """Not one of the allowed container formats (the service answers 415)."""


def allowed() -> str:
    return ", ".join(CONTAINERS.values())


def sniff_container(head: bytes, name: str) -> str:
    """The FFmpeg demuxer for a file starting with `head` (its first `SNIFF_BYTES` bytes), or
    `UnsupportedContainerError` naming `name` and the formats accepted."""
    if head[4:8] in ISO_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML header
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    raise UnsupportedContainerError(f"{name}: not a video container this server opens; expected {allowed()}")
