"""`load_rgb`'s decoders give PIL's exact pixels, and bad files fail the same way whatever the decoder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_lightning.data.images import BadImageError, load_rgb


def _jpeg(path: Path, mode: str = "RGB", subsampling: int = 2, exif_orientation: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).convert(mode)
    options: dict = {"quality": 90}
    if mode != "L":
        options["subsampling"] = subsampling
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif.tobytes()
    image.save(path, "JPEG", **options)
    return path


@pytest.mark.parametrize(
    ("mode", "subsampling", "orientation"),
    [("RGB", 2, None), ("RGB", 0, None), ("L", 0, None), ("CMYK", 0, None), ("RGB", 2, 6)],
)
def test_fast_decoders_match_pil_exactly(
    tmp_path: Path, mode: str, subsampling: int, orientation: int | None
) -> None:
    path = _jpeg(tmp_path / "x.jpg", mode, subsampling, orientation)
    reference = load_rgb(path, decoder="pil")
    for decoder in ("auto", "simplejpeg"):
        decoded = load_rgb(path, decoder=decoder)
        assert decoded.dtype == np.uint8 and decoded.shape == reference.shape
        assert np.array_equal(decoded, reference), (decoder, mode, orientation)
    if orientation == 6:
        assert reference.shape[:2] == (53, 37)  # EXIF rotation applied by the PIL fallback


@pytest.mark.parametrize("decoder", ["auto", "pil", "simplejpeg"])
def test_broken_files_raise_bad_image_error_naming_the_file(tmp_path: Path, decoder: str) -> None:
    data = _jpeg(tmp_path / "good.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        with pytest.raises(BadImageError, match=path.name):
            load_rgb(path, decoder=decoder)


def test_pixel_limit_holds_on_the_fast_path(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "big.jpg")
    with pytest.raises(BadImageError, match="exceeds the limit"):
        load_rgb(path, max_pixels=100, decoder="auto")


def test_png_and_unknown_decoder(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4), (1, 2, 3)).save(buffer, "PNG")
    png = tmp_path / "x.png"
    png.write_bytes(buffer.getvalue())
    assert load_rgb(png, decoder="auto")[0, 0].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="data.decoder"):
        load_rgb(png, decoder="turbo")


@pytest.mark.parametrize("decoder", ["auto", "pil", "simplejpeg"])
def test_a_jpeg_scan_bomb_is_refused_before_any_decoder_runs(tmp_path: Path, decoder: str) -> None:
    """The scan limit holds whichever decoder is asked for (the fast path hands the file to PIL's, which
    refuses it with the reason); a normal progressive JPEG is far below it."""
    from deepfake_lightning.data.decode_limits import MAX_JPEG_SCANS, jpeg_scans
    from tests.hostile_files import jpeg_scan_bomb

    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(jpeg_scan_bomb(64, MAX_JPEG_SCANS + 1))
    with pytest.raises(BadImageError, match=f"bomb.jpg: JPEG with more than {MAX_JPEG_SCANS} scans"):
        load_rgb(bomb, decoder=decoder)
    at_limit = tmp_path / "many_scans.jpg"
    at_limit.write_bytes(jpeg_scan_bomb(64, MAX_JPEG_SCANS))
    assert load_rgb(at_limit, decoder=decoder).shape == (64, 64, 3)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 99, 199)).save(buffer, "JPEG", progressive=True)
    assert jpeg_scans(buffer.getvalue()) == 10  # libjpeg's default progression for a colour image


def test_rgb_array_converts_large_images_band_by_band_to_the_same_pixels() -> None:
    from deepfake_lightning.data.images import BAND_PIXELS, rgb_array, to_rgb

    side = int(BAND_PIXELS**0.5) + 300  # more pixels than one band: the banded path
    array = np.random.default_rng(0).integers(0, 256, (side, side + 7, 3), dtype=np.uint8)
    for image in (Image.fromarray(array), Image.fromarray(array).convert("P")):
        assert np.array_equal(rgb_array(image.copy()), np.asarray(to_rgb(image)))
    turned = Image.fromarray(array[:40, :30])
    exif = turned.getexif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    turned.info["exif"] = exif.tobytes()
    assert to_rgb(turned).size == (40, 30) and turned.size == (30, 40)  # a caller's image is left as it is
