"""Export: ONNX and TorchScript parity with PyTorch, metadata, tamper check, ONNX backend, int8 quantization."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_lightning.bundle import BundleError, manifest_path, open_model
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.export import export
from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.export_model import export_model
from deepfake_lightning.inference.ort_sessions import PerCoreSessions
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.hashing import sha256_file
from tests.fixtures_inference import compose_entry, face_like_image

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt, tiny_onnx, ... shared fixtures

PARITY = 1e-4


def _images(n: int) -> list[np.ndarray]:
    return [face_like_image(100 + i, size=64 + 8 * i) for i in range(n)]


def test_onnx_metadata(tiny_onnx: Path, tiny_ckpt: Path) -> None:
    meta = json.loads(manifest_path(tiny_onnx).read_text())
    torch_detector = Detector.load(tiny_ckpt)
    assert meta["sha256"] == sha256_file(tiny_onnx)
    assert meta["format"] == "onnx" and meta["model_file"] == "model.onnx"
    assert meta["preprocessing"] == torch_detector.bundle.preprocessing
    assert (meta["threshold"], meta["temperature"]) == (torch_detector.threshold, torch_detector.temperature)
    assert meta["source_checkpoint_sha256"] == sha256_file(tiny_ckpt)
    assert (
        meta["versions"]["deepfake_lightning"] and meta["versions"]["torch"] and meta["bundle_version"] == 2
    )
    assert meta["input"]["shape"][0] == "batch" and meta["outputs"] == ["logits", "attention"]
    assert meta["parity_max_abs_diff_p_fake"] <= PARITY


def test_onnx_matches_pytorch_for_any_batch_size(tiny_onnx: Path, tiny_ckpt: Path) -> None:
    torch_detector = Detector.load(tiny_ckpt, calibration="none")
    onnx_detector = Detector.load(tiny_onnx, calibration="none")
    assert onnx_detector.describe()["backend"] == "onnx"
    for n in (1, 5):
        images = _images(n)
        expected = torch_detector.predict(images, attention=True)
        got = onnx_detector.predict(images, attention=True)
        for a, b in zip(expected, got, strict=True):
            assert abs(a.p_fake - b.p_fake) <= PARITY
            assert np.allclose(a.attention, b.attention, atol=1e-4)


def test_per_core_sessions_give_the_same_scores_and_attention(tiny_onnx: Path) -> None:
    one = Detector.load(tiny_onnx, calibration="none")
    split = Detector.load(tiny_onnx, calibration="none", onnx_sessions=2)
    assert isinstance(split.backend.session, PerCoreSessions) and split.backend.session.n == 2
    for n in (1, 3):  # one image runs whole on the first session; three split 2 + 1
        images = _images(n)
        for a, b in zip(
            one.predict(images, attention=True), split.predict(images, attention=True), strict=True
        ):
            assert abs(a.p_fake - b.p_fake) <= 1e-6
            assert np.allclose(a.attention, b.attention, atol=1e-6)
    with pytest.raises(ValueError, match="one batched input"):
        split.backend.session.run(None, {"image": np.zeros((2, 3, 8, 8), np.float32), "other": np.zeros(1)})


def test_backend_onnx_on_a_checkpoint_exports_in_memory(tiny_ckpt: Path) -> None:
    images = _images(3)
    torch_scores = [p.p_fake for p in Detector.load(tiny_ckpt).predict(images)]
    onnx_detector = Detector.load(tiny_ckpt, backend="onnx")
    assert onnx_detector.describe()["backend"] == "onnx"
    assert np.allclose([p.p_fake for p in onnx_detector.predict(images)], torch_scores, atol=PARITY)


def test_torchscript_export_matches_pytorch(tiny_ckpt: Path, tmp_path: Path) -> None:
    model = export_model(tiny_ckpt, tmp_path / "model.pt", fmt="torchscript")
    meta = json.loads(manifest_path(model).read_text())
    assert meta["format"] == "torchscript" and meta["sha256"] == sha256_file(model)
    net = open_model(tiny_ckpt, calibration=None).net
    scripted = torch.jit.load(str(model))
    batch = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        logits, attention = scripted(batch)
        reference = net(batch)
    t = meta["temperature"]
    assert (
        np.abs(apply_temperature(logits.numpy(), t) - apply_temperature(reference.numpy(), t)).max() <= PARITY
    )
    assert attention.shape[0] == 4


def test_exported_temperature_comes_from_the_run(calibrated_ckpt, tmp_path: Path) -> None:
    ckpt = calibrated_ckpt({"temperature": 1.7, "threshold": 0.42, "threshold_rule": "eer"})
    model = export_model(ckpt, tmp_path / "out" / "m.onnx")
    meta = json.loads(manifest_path(model).read_text())
    assert (meta["temperature"], meta["threshold"], meta["threshold_rule"]) == (1.7, 0.42, "eer")
    loaded = Detector.load(model)
    assert (loaded.temperature, loaded.threshold) == (1.7, 0.42)


def test_changed_or_orphaned_model_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(tiny_onnx, copy)
    with pytest.raises(BundleError, match="model.onnx.json not found"):
        Detector.load(copy)
    shutil.copyfile(manifest_path(tiny_onnx), manifest_path(copy))
    assert Detector.load(copy).threshold is not None
    with copy.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="SHA-256"):
        Detector.load(copy)
    with pytest.raises(BundleError, match="backend=onnx"):
        Detector.load(tiny_onnx, backend="torch")


def test_int8_static_quantization_records_auroc_change(
    tiny_ckpt: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from deepfake_lightning.data.index import index_folder

    images = sorted(tiny_data.rglob("*.jpg"))[:4]
    samples = index_folder(tiny_data, use_all_for_test=True)["test"]
    model = export_model(
        tiny_ckpt, tmp_path / "int8.onnx", quantize="int8", calibration_images=images, eval_samples=samples
    )
    quant = json.loads(manifest_path(model).read_text())["quantization"]
    assert quant["mode"] == "static_qdq" and quant["calibration_images"] == 4
    assert quant["eval_images"] == len(samples)
    assert quant["auroc_change"] == pytest.approx(quant["auroc_int8"] - quant["auroc_fp32"])
    assert quant["size_bytes_int8"] < quant["size_bytes_fp32"]
    [pred] = Detector.load(model).predict(face_like_image(1))
    assert 0.0 <= pred.p_fake <= 1.0


def test_export_entry_point(tiny_ckpt: Path, tiny_data: Path, tmp_path: Path) -> None:
    cfg = compose_entry(
        "export", [f"ckpt_path={tiny_ckpt}", "quantize=int8", f"eval_dir={tiny_data}"], tmp_path / "run"
    )
    result = export(cfg)
    assert result["model"] == str(tmp_path / "run" / "model.onnx")
    quant = json.loads(Path(result["bundle"]).read_text())["quantization"]
    assert quant["mode"] == "dynamic" and "auroc_change" in quant
    bad = [
        (["format=tflite"], "format"),
        (["format=torchscript", "quantize=int8"], "quantize=int8 needs format=onnx"),
        (["output=model.pt"], "should end in .onnx"),
        ([f"calibration_dir={tmp_path / 'nope'}"], "calibration_dir"),
    ]
    for overrides, match in bad:
        cfg = compose_entry("export", [f"ckpt_path={tiny_ckpt}", *overrides], tmp_path / "bad")
        with pytest.raises(ConfigError, match=match):
            export(cfg)
