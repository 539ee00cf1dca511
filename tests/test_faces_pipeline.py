"""The face pipeline through every consumer: `data.face_crop` in training, the bundle's record of it, and
predict, predict_video's frame loop and the service applying it by default, every face scored (max wins)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.faces import Alignment, FacePipeline
from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.inference.video_source import Frame
from deepfake_lightning.prediction.frames import predict_frames
from tests.fixtures_inference import compose_entry
from tests.fixtures_inference import two_faces as _two_faces

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt, face_folder, face_ckpt
FACE_CROP = {"enabled": True, "detector": "centerface", "alignment": "landmarks", "scale": 1.3, "size": 64}


def test_data_face_crop_serves_the_aligned_face(face_folder: Path, tmp_path: Path) -> None:
    module = DeepfakeDataModule(
        str(face_folder), layout="folder", image_size=32, num_workers=0, batch_size=2,
        split_ratios=(0.6, 0.2, 0.2), face_crop={**FACE_CROP, "cache_dir": str(tmp_path)},
    )  # fmt: skip
    module.setup()
    assert module.face_counts["images"] == 11 and module.face_counts["no_face"] == 1
    assert module.face_counts["pipeline"]["detector"] == "centerface"
    dataset = module._dataset("train", train=False)
    path = next(p for p, _ in dataset.samples if p.endswith(".jpg"))
    item = dataset[dataset.samples.index(next(s for s in dataset.samples if s[0] == path))]
    pipeline = FacePipeline("centerface", Alignment("landmarks", 1.3, 64))
    expected = build_eval_transform(32, "resize", module.normalize)(pipeline.largest(load_rgb(path)).image)
    assert np.array_equal(item["image"].numpy(), expected.numpy())  # the same crop, to the pixel
    skipping = DeepfakeDataModule(
        str(face_folder), layout="folder", image_size=32, num_workers=0, use_all_for_test=True,
        face_crop={**FACE_CROP, "on_no_face": "skip", "cache_dir": str(tmp_path)},
    )  # fmt: skip
    skipping.setup()
    assert skipping.face_counts["detected_now"] == 0  # all from the cache of the first module
    assert len(skipping.index["test"]) == 10 and not any("noise" in p for p, _ in skipping.index["test"])


def test_the_bundle_records_the_pipeline_and_inference_applies_it(face_ckpt: Path) -> None:
    info = json.loads((face_ckpt.parent.parent / "model_info.json").read_text())
    assert (info["face_crop"]["images"], info["face_crop"]["no_face"]) == (11, 1)  # the noise image
    detector = Detector.load(face_ckpt)
    described = detector.describe()
    assert described["face_pipeline_source"] == "bundle" and detector.face_crop
    assert described["face_pipeline"]["size"] == 64 and described["face_pipeline"]["detector"] == "centerface"
    [pred] = detector.predict(_two_faces())
    assert pred.face == "found" and len(pred.faces) == 2
    assert pred.p_fake == max(face["p_fake"] for face in pred.faces)
    assert all(face["alignment"] == "landmarks" and len(face["box"]) == 4 for face in pred.faces)
    off = Detector.load(face_ckpt, face_crop=False)
    assert (
        off.describe()["face_pipeline_source"] == "explicit: off"
        and off.predict(_two_faces())[0].face is None
    )
    haar = Detector.load(face_ckpt, face_options={"detector": "haar"})
    assert haar.describe()["face_pipeline_source"] == "explicit"
    assert haar.describe()["face_pipeline"]["detector"] == "haar"
    assert haar.describe()["face_pipeline"]["size"] == 64  # the bundle's alignment kept


def test_predict_rows_list_every_face(face_ckpt: Path, tmp_path: Path) -> None:
    from deepfake_lightning.predict import predict

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.fromarray(_two_faces()).save(inputs / "two.png")
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(
        inputs / "noise.png"
    )
    output = tmp_path / "out.csv"
    overrides = [f"ckpt_path={face_ckpt}", f"input={inputs}", f"output={output}", "progress=false"]
    result = predict(compose_entry("predict", overrides, tmp_path / "run"))
    assert result["status"] == "ok"
    rows = {Path(r["path"]).name: r for r in csv.DictReader(output.open())}
    assert rows["two.png"]["face"] == "found" and rows["two.png"]["n_faces"] == "2"
    faces = json.loads(rows["two.png"]["faces"])  # JSON in the CSV cell
    assert float(rows["two.png"]["p_fake"]) == pytest.approx(max(f["p_fake"] for f in faces))
    assert (rows["noise.png"]["face"], rows["noise.png"]["n_faces"]) == ("not_found", "0")


def test_video_frames_and_the_service_score_each_face(face_ckpt: Path) -> None:
    detector = Detector.load(face_ckpt)
    image = _two_faces()
    rows: list[dict] = []
    frames = [Frame(i, i / 25, image) for i in range(2)]
    summary = predict_frames(detector, frames, batch_size=2, on_row=rows.append)
    assert summary.faces_found == 2 and [r["n_faces"] for r in rows] == [2, 2]
    expected = detector.predict(image)[0]
    for batch in (1, 16):  # the serial path and the dynamic batcher
        client = TestClient(create_app(detector, ServiceSettings(max_batch_size=batch)))
        buffer = __import__("io").BytesIO()
        Image.fromarray(image).save(buffer, "PNG")
        body = client.post("/v1/predict?explain=true", files={"file": ("two.png", buffer.getvalue())}).json()
        assert body["n_faces"] == 2 and body["p_fake"] == pytest.approx(expected.p_fake, abs=1e-5)
        assert [f["box"] for f in body["faces"]] == [f["box"] for f in expected.faces]
        assert "crop" in body["explanation"]


def test_eval_crops_the_data_as_the_model_was_trained(
    face_ckpt: Path, face_folder: Path, tmp_path: Path
) -> None:
    from deepfake_lightning.bundle import open_model
    from deepfake_lightning.evaluation.eval_setup import apply_checkpoint_preprocessing

    overrides = [
        f"ckpt_path={face_ckpt}",
        "data=folder",
        f"data.root={face_folder}",
        "data.face_crop.cache_dir=/x",
    ]
    cfg = compose_entry("eval", overrides, tmp_path / "run")
    assert not cfg.data.face_crop.enabled
    apply_checkpoint_preprocessing(cfg, open_model(face_ckpt))
    assert cfg.data.face_crop.enabled and cfg.data.face_crop.size == 64
    assert cfg.data.face_crop.cache_dir == "/x" and cfg.data.face_crop.on_no_face == "full"  # local keys kept


def test_a_missing_face_model_stops_predict_with_one_line(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepfake_lightning.predict import predict
    from deepfake_lightning.utils.task import run_task

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # no CenterFace file cached there
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(image)
    cfg = compose_entry(
        "predict", [f"ckpt_path={tiny_ckpt}", f"input={image}", "face_crop=true"], tmp_path / "r"
    )
    with pytest.raises(
        SystemExit, match=r"Invalid input: .*centerface-09189dea.onnx: CenterFace model not found; run"
    ):
        run_task(predict, cfg)
