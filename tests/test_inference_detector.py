"""Detector API: inputs of every kind, calibration lookup, too-small policy, attention, faces, ensembles."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lightning.bundle import BundleError, CheckpointError, manifest_path, open_model
from deepfake_lightning.data.images import BadImageError
from deepfake_lightning.faces import FACE_NOT_FOUND
from deepfake_lightning.inference import Detector, EnsembleDetector, evaluate_ensemble, load_detector
from deepfake_lightning.inference.inputs import expand_inputs
from deepfake_lightning.prediction.image_check import ImageTooSmallError
from deepfake_lightning.utils.hashing import sha256_file
from tests.fixtures_inference import face_like_image, save_image

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt, tiny_onnx, ... shared fixtures


@pytest.fixture(scope="module")
def detector(tiny_ckpt: Path) -> Detector:
    return Detector.load(tiny_ckpt)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_checkpoint_defaults_without_calibration(calibrated_ckpt, tiny_ckpt: Path) -> None:
    hparams = torch.load(tiny_ckpt, weights_only=True)["hyper_parameters"]
    detector = Detector.load(calibrated_ckpt(None))
    assert detector.temperature == 1.0 and detector.bundle.calibration_source is None
    assert detector.threshold == hparams["threshold"]
    assert detector.bundle.preprocessing == hparams["preprocessing"]
    assert detector.describe()["backend"] == "torch"


def test_training_run_calibration_is_found(detector: Detector, tiny_ckpt: Path) -> None:
    record_path = tiny_ckpt.parent.parent / "calibration.json"
    assert record_path.is_file() and manifest_path(tiny_ckpt).is_file()  # training writes both
    record = json.loads(record_path.read_text())
    assert detector.bundle.calibration_source == str(record_path)
    assert detector.bundle.manifest == str(manifest_path(tiny_ckpt))
    assert detector.temperature == record["temperature"]
    assert detector.threshold == record.get("threshold", detector.threshold)


def test_every_input_kind_gives_the_same_score(detector: Detector, tmp_path: Path) -> None:
    array = face_like_image(1, size=72)
    path = save_image(tmp_path / "x.png", array)
    from_path, from_pil, from_array, from_bytes = detector.predict(
        [path, Image.fromarray(array), array, path.read_bytes()]
    )
    assert 0.0 <= from_path.p_fake <= 1.0
    for other in (from_pil, from_array, from_bytes):
        assert other.p_fake == pytest.approx(from_path.p_fake, abs=1e-7)
    assert from_path.label == ("fake" if from_path.p_fake >= detector.threshold else "real")
    batch = detector.predict(np.stack([array, array]))  # NxHxWx3 is a batch
    assert len(batch) == 2 and batch[1].p_fake == pytest.approx(from_path.p_fake, abs=1e-7)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I"])
def test_any_pil_mode_is_converted_to_rgb(detector: Detector, tmp_path: Path, mode: str) -> None:
    array = face_like_image(2, size=64)
    image = Image.fromarray(array).convert(mode) if mode not in ("I;16", "I") else None
    if mode == "I;16":
        image = Image.fromarray(array[:, :, 0].astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(array[:, :, 0].astype(np.int32) * 100, mode="I")
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("I",) else "PNG"
    path = tmp_path / f"img.{fmt.lower()}"
    image.save(path, fmt)
    [pred] = detector.predict(path)
    assert 0.0 <= pred.p_fake <= 1.0
    tensors, _ = detector.prepare(path, str(path))
    assert tensors[0].shape == (1, 3, 32, 32)  # one region: the whole image


def test_exif_orientation_is_applied(detector: Detector, tmp_path: Path) -> None:
    upright = np.zeros((64, 96, 3), np.uint8)
    upright[:, :48] = 255  # left half white: rotation changes the picture
    stored = np.rot90(upright, k=1)  # what a camera writes before tagging "rotate 270 CW to view"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer rotates 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, "JPEG", exif=exif.tobytes(), quality=100)
    from_file, _ = detector.prepare(path, "rotated")
    from_upright, _ = detector.prepare(upright, "upright")
    from_stored, _ = detector.prepare(np.ascontiguousarray(stored), "stored")
    assert torch.allclose(from_file[0], from_upright[0], atol=0.1)
    assert not torch.allclose(from_file[0], from_stored[0], atol=0.1)


def test_unreadable_and_too_small_inputs_raise_naming_the_input(detector: Detector, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(BadImageError, match="broken.jpg"):
        detector.predict(broken)
    tiny = save_image(tmp_path / "tiny.png", face_like_image(3, size=20))
    with pytest.raises(ImageTooSmallError, match=r"tiny.png: image is 20x20 px.*min_size=64"):
        detector.predict(tiny)
    with pytest.raises(BadImageError, match="shape"):
        detector.predict(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(BadImageError, match="empty"):
        detector.predict(b"")


def test_min_size_zero_accepts_any_size(tiny_ckpt: Path, tmp_path: Path) -> None:
    detector = Detector.load(tiny_ckpt, min_size=0)
    [pred] = detector.predict(face_like_image(4, size=8))
    assert 0.0 <= pred.p_fake <= 1.0


def test_attention_map_is_returned_on_request(detector: Detector) -> None:
    plain, with_map = (
        detector.predict(face_like_image(5), attention=False)[0],
        detector.predict(face_like_image(5), attention=True)[0],
    )
    assert plain.attention is None
    assert with_map.attention is not None and with_map.attention.ndim == 2
    assert np.all((with_map.attention >= 0) & (with_map.attention <= 1))
    assert "attention" in with_map.to_dict(attention=True)


def test_run_calibration_sets_temperature_and_threshold(calibrated_ckpt, detector: Detector) -> None:
    ckpt = calibrated_ckpt({"temperature": 2.5, "threshold": 0.3, "threshold_rule": "youden"})
    calibrated = Detector.load(ckpt)
    assert (calibrated.temperature, calibrated.threshold) == (2.5, 0.3)
    assert calibrated.bundle.threshold_rule == "youden"
    image = face_like_image(6)
    raw = Detector.load(ckpt, calibration="none").predict(image)[0].p_fake
    expected = 1 / (1 + math.exp(-_logit(raw) / 2.5))
    assert calibrated.predict(image)[0].p_fake == pytest.approx(expected, abs=1e-9)
    assert Detector.load(ckpt, calibration="none").temperature == 1.0
    assert Detector.load(ckpt, threshold=0.9).threshold == 0.9


def test_only_the_bundle_is_read_and_a_foreign_calibration_is_refused(
    calibrated_ckpt, tmp_path: Path
) -> None:
    ckpt = calibrated_ckpt(None)  # a bare checkpoint: a calibration.json in its run is NOT picked up by path
    (ckpt.parent.parent / "calibration.json").write_text(json.dumps({"temperature": 3.0, "threshold": 0.6}))
    assert (Detector.load(ckpt).temperature, Detector.load(ckpt).bundle.threshold_rule) == (1.0, "fixed")
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"temperature": 3.0, "threshold": 0.6, "checkpoint_sha256": "ab" * 32}))
    with pytest.raises(BundleError, match="fitted for weights with SHA-256 abababab"):
        Detector.load(ckpt, calibration=foreign)
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"temperature": 3.0, "checkpoint": "/runs/x/checkpoints/epoch_3.ckpt"}))
    with pytest.raises(BundleError, match="fitted for epoch_3.ckpt, not best.ckpt"):
        Detector.load(ckpt, calibration=named)
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"temperature": 3.0, "threshold": 0.6, "checkpoint_sha256": sha256_file(ckpt)}))
    assert Detector.load(ckpt, calibration=own).temperature == 3.0


def test_weights_changed_after_their_bundle_are_refused(calibrated_ckpt) -> None:
    ckpt = calibrated_ckpt({"temperature": 2.0, "threshold": 0.4, "threshold_rule": "0.4"})
    assert Detector.load(ckpt).temperature == 2.0
    with ckpt.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="SHA-256 differs from the one recorded in .*best.ckpt.json"):
        Detector.load(ckpt)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"temperature": -1}', "positive"),
        ('{"temperature": 1, "threshold": 2}', "threshold"),
    ],
)
def test_bad_calibration_file_is_named(calibrated_ckpt, content: str, match: str) -> None:
    ckpt = calibrated_ckpt(None)
    bad = ckpt.parent.parent / "calibration.json"
    bad.write_text(content)
    with pytest.raises(BundleError, match=match) as info:
        Detector.load(ckpt, calibration=bad)
    assert "calibration.json" in str(info.value)


def test_bad_model_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        Detector.load(junk)
    with pytest.raises(BundleError, match="TorchScript"):
        Detector.load(tmp_path / "model.pt")
    with pytest.raises(BundleError, match="not found"):
        Detector.load(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="backend"):
        Detector.load(junk, backend="tensorrt")


def test_face_crop_status_is_recorded(tiny_ckpt: Path) -> None:
    """No face: the whole image is scored (the same score as without a face pipeline) and says not_found."""
    detector = Detector.load(tiny_ckpt, face_crop=True)
    image = face_like_image(8, size=96)
    [pred] = detector.predict(image)
    assert pred.face == FACE_NOT_FOUND and pred.to_dict()["face"] == FACE_NOT_FOUND
    assert pred.to_dict()["n_faces"] == 0 and pred.faces == []
    assert pred.p_fake == pytest.approx(Detector.load(tiny_ckpt).predict(image)[0].p_fake, abs=1e-6)
    assert detector.describe()["face_pipeline_source"] == "default"  # this model records no face pipeline


def test_ensemble_is_the_mean_of_calibrated_members(
    calibrated_ckpt, tiny_ckpt: Path, detector: Detector
) -> None:
    other = calibrated_ckpt({"temperature": 4.0, "threshold": 0.2, "threshold_rule": "x"})
    ensemble = load_detector([tiny_ckpt, other])
    assert isinstance(ensemble, EnsembleDetector)
    assert ensemble.threshold == pytest.approx((detector.threshold + 0.2) / 2)
    assert len(ensemble.preparer.transforms) == 1  # same preprocessing is computed once
    images = [face_like_image(9), face_like_image(10)]
    members = [m.predict(images) for m in ensemble.members]
    for i, pred in enumerate(ensemble.predict(images, attention=True)):
        assert pred.p_fake == pytest.approx((members[0][i].p_fake + members[1][i].p_fake) / 2, abs=1e-12)
        assert pred.attention is not None
    assert ensemble.describe()["kind"] == "ensemble" and len(ensemble.describe()["members"]) == 2
    assert EnsembleDetector(ensemble.members, threshold=0.7).threshold == 0.7


def test_evaluate_ensemble_reports_metrics(tiny_ckpt: Path, tiny_data: Path) -> None:
    samples = [(str(p), 1) for p in sorted((tiny_data / "fake").glob("*.jpg"))[:2]]
    samples += [(str(p), 0) for p in sorted((tiny_data / "real").glob("*.jpg"))[:2]]
    metrics = evaluate_ensemble(Detector.load(tiny_ckpt, min_size=0), samples, n_bootstrap=0)
    assert metrics["n"] == 4 and 0.0 <= metrics["auroc"]["value"] <= 1.0


def test_expand_inputs_file_dir_glob(image_folder: Path) -> None:
    assert len(expand_inputs(image_folder)) == 4
    assert [p.name for p in expand_inputs(str(image_folder / "img_*.png"))] == [
        "img_0.png",
        "img_1.png",
        "img_2.png",
    ]
    assert expand_inputs(image_folder / "broken.jpg") == [image_folder / "broken.jpg"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_inputs(image_folder / "nothing_here_*.png")


def test_bytes_of_a_png_decode_like_the_file(detector: Detector, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(face_like_image(11)).save(buffer, "PNG")
    path = tmp_path / "same.png"
    path.write_bytes(buffer.getvalue())
    assert detector.predict(buffer.getvalue())[0].p_fake == pytest.approx(detector.predict(path)[0].p_fake)


def test_optimized_torch_graph_matches_the_training_graph(tiny_ckpt: Path) -> None:
    from deepfake_lightning.inference.backends import TorchBackend

    net = open_model(tiny_ckpt, calibration=None).net
    batch = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain_logits, plain_map = TorchBackend(net, optimize=False)(batch)
    fast = TorchBackend(net, optimize=True)
    fast_logits, fast_map = fast(batch)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is left alone
    assert np.allclose(fast_logits, plain_logits, atol=1e-5) and np.allclose(fast_map, plain_map, atol=1e-5)
