"""`predict`'s overlapped path (workers decode while the model scores), its automatic sizes, and quantize=int8."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import torch

from deepfake_lightning.bundle import open_model
from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.backends import ONNX_BATCH_PER_SESSION, TORCH_CPU_BATCH
from deepfake_lightning.inference.int8_cache import cache_key
from deepfake_lightning.predict import predict
from deepfake_lightning.prediction.files import auto_batch_size, predict_files
from deepfake_lightning.utils.config_validation import ConfigError
from tests.fixtures_inference import compose_entry, face_like_image, save_image

pytest_plugins = ("tests.fixtures_inference",)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """9 files, errors in the middle of batches: 7 good images, one text file, one 16-px image."""
    folder = tmp_path / "mixed"
    for i in range(7):
        save_image(folder / f"img_{i}.png", face_like_image(i, size=64 + 8 * i))
    (folder / "img_3b_broken.jpg").write_bytes(b"not an image")
    save_image(folder / "img_5b_small.png", face_like_image(99, size=16))
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("decode_in", ["threads", "processes"])
def test_overlapped_batches_give_the_serial_rows(tiny_ckpt: Path, mixed_folder: Path, decode_in: str) -> None:
    """Batches of 4 decoded by 2 workers = one file at a time in this thread: order, errors, p_fake (1e-5)."""
    detector = Detector.load(tiny_ckpt)
    paths = sorted(mixed_folder.iterdir())
    serial = list(predict_files(detector, paths, batch_size=1, num_workers=0))
    overlapped = list(predict_files(detector, paths, batch_size=4, num_workers=2, decode_in=decode_in))
    assert [r["path"] for r in overlapped] == [str(p) for p in paths] == [r["path"] for r in serial]
    assert [r["index"] for r in overlapped] == list(range(len(paths)))
    for fast, slow in zip(overlapped, serial, strict=True):
        assert (fast["label"], fast["error"], fast["face"]) == (slow["label"], slow["error"], slow["face"])
        if slow["p_fake"] is None:
            assert fast["p_fake"] is None
        else:
            assert fast["p_fake"] == pytest.approx(slow["p_fake"], abs=1e-5)
    errors = {Path(r["path"]).name: r["error"] for r in overlapped if r["error"]}
    assert sorted(errors) == ["img_3b_broken.jpg", "img_5b_small.png"]
    assert "img_3b_broken.jpg" in errors["img_3b_broken.jpg"] and "min_size=64" in errors["img_5b_small.png"]
    good = [r for r in overlapped if not r["error"]]
    reference = detector.predict([Path(r["path"]) for r in good])
    assert [r["p_fake"] for r in good] == pytest.approx([p.p_fake for p in reference], abs=1e-5)


def test_uint8_batches_normalize_to_the_exact_model_inputs(tiny_ckpt: Path, calibrated_ckpt) -> None:
    """Workers send uint8; the lookup table gives bit-identical floats to the eval transform, per preprocessing."""
    from deepfake_lightning.inference.load import load_detector
    from deepfake_lightning.prediction.scoring import stack_inputs
    from deepfake_lightning.prediction.uint8_transfer import Uint8Transfer

    detector = Detector.load(tiny_ckpt)
    images = [face_like_image(i, size=64 + 8 * i) for i in range(4)]
    transfer = Uint8Transfer(detector)
    sent = stack_inputs([transfer.preparer(image, "x")[0] for image in images])
    assert sent[0].dtype == torch.uint8
    expected = stack_inputs([detector.preparer(image, "x")[0] for image in images])
    assert all(torch.equal(a, b) for a, b in zip(transfer.normalize(sent), expected, strict=True))
    other = calibrated_ckpt(None)
    ensemble = load_detector([tiny_ckpt, other])
    assert len(Uint8Transfer(ensemble).tables) == 1  # same preprocessing: prepared once


def test_automatic_batch_follows_the_backend(tiny_ckpt: Path, tiny_onnx: Path) -> None:
    assert auto_batch_size(Detector.load(tiny_ckpt)) == TORCH_CPU_BATCH
    per_core = Detector.load(tiny_onnx, onnx_sessions=2)
    assert auto_batch_size(per_core) == 2 * ONNX_BATCH_PER_SESSION


def test_cli_logs_the_sizes_it_picked(
    tiny_ckpt: Path, mixed_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_entry(
        "predict", [f"ckpt_path={tiny_ckpt}", f"input={mixed_folder}", "progress=false"], tmp_path / "run"
    )
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.predict"):
        result = predict(cfg)
    assert f"batch_size={TORCH_CPU_BATCH}, num_workers=" in caplog.text and "(threads)" in caplog.text
    assert (result["n"], result["error"]) == (9, 2)


def test_quantize_int8_is_made_once_and_cached(
    tiny_ckpt: Path, mixed_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    common = [f"ckpt_path={tiny_ckpt}", f"input={mixed_folder}", "progress=false", "num_workers=0"]
    fp32 = predict(compose_entry("predict", [*common, f"output={tmp_path}/fp32.csv"], tmp_path / "a"))
    int8_overrides = [*common, "quantize=int8", f"int8_cache_dir={cache}", f"output={tmp_path}/int8.csv"]
    with caplog.at_level(logging.INFO, logger="deepfake_lightning.inference.int8_cache"):
        predict(compose_entry("predict", int8_overrides, tmp_path / "b"))
        [model] = cache.glob("*.int8.onnx")
        made = model.stat().st_mtime_ns
        again = predict(compose_entry("predict", int8_overrides, tmp_path / "c"))
    assert model.stat().st_mtime_ns == made and "int8 model from the cache" in caplog.text
    assert (model.parent / (model.name + ".json")).is_file()
    rows_fp32, rows_int8 = _rows(Path(fp32["output"])), _rows(Path(again["output"]))
    assert [r["path"] for r in rows_int8] == [r["path"] for r in rows_fp32]
    assert [r["error"] for r in rows_int8] == [r["error"] for r in rows_fp32]
    for a, b in zip(rows_fp32, rows_int8, strict=True):
        if a["p_fake"]:
            assert float(b["p_fake"]) == pytest.approx(float(a["p_fake"]), abs=0.1)  # int8 rounding, tiny net


def test_cache_key_changes_with_the_calibration_images(tiny_ckpt: Path, mixed_folder: Path) -> None:
    images, model = sorted(mixed_folder.glob("img_?.png")), open_model(tiny_ckpt, calibration=None)
    assert cache_key(model, images) == cache_key(model, list(images))
    assert cache_key(model, images[:-1]) != cache_key(model, images)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["quantize=int4"], "quantize='int4': expected null or int8"),
        (["decode_in=fibers"], "decode_in='fibers': expected auto, threads or processes"),
        (
            ["calibration_dir=/no/such/dir", "quantize=int8"],
            "calibration_dir='/no/such/dir': expected null or an existing folder of images",
        ),
    ],
)
def test_quantize_config_errors(
    tiny_ckpt: Path, mixed_folder: Path, tmp_path: Path, overrides: list[str], match: str
) -> None:
    cfg = compose_entry("predict", [f"ckpt_path={tiny_ckpt}", f"input={mixed_folder}", *overrides], tmp_path)
    with pytest.raises(ConfigError, match=match):
        predict(cfg)


def test_quantize_refuses_an_exported_model(tiny_onnx: Path, mixed_folder: Path, tmp_path: Path) -> None:
    cfg = compose_entry(
        "predict", [f"ckpt_path={tiny_onnx}", f"input={mixed_folder}", "quantize=int8"], tmp_path
    )
    with pytest.raises(ConfigError, match=r"already exported; pass the \.ckpt"):
        predict(cfg)
