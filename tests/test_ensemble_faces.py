"""An ensemble of a full-frame model and an aligned-crop model: each member reads its own bundle's face pipeline,
every path (predict, the files loop, the service) gives the mean of what each member alone gives, and the
benchmark's fused row scores what the served ensemble predicts."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.fuse_rows import fuse_rows
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from deepfake_lightning.inference import Detector, load_detector
from deepfake_lightning.inference.ensemble import EnsembleDetector
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from tests.fixtures_inference import compose_entry, two_faces
from tests.tiny_run import eval_config

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt (whole images, 32 px), face_folder, face_ckpt


def _images(face_folder: Path) -> list[Path]:
    return sorted(face_folder.rglob("*.jpg"))[:3] + [face_folder / "real" / "zz_noise.png"]


@pytest.fixture(scope="module")
def ensemble(tiny_ckpt: Path, face_ckpt: Path) -> EnsembleDetector:
    loaded = load_detector([tiny_ckpt, face_ckpt])
    assert isinstance(loaded, EnsembleDetector)
    return loaded


def test_each_member_reads_its_own_face_pipeline(
    ensemble: EnsembleDetector, tiny_ckpt: Path, face_ckpt: Path, face_folder: Path
) -> None:
    assert ensemble.per_member_faces and ensemble.face_crop
    described = ensemble.describe()
    assert described["face_pipeline_source"] == "per member"
    assert [m["face_pipeline_source"] for m in described["members"]] == ["off", "bundle"]
    assert described["members"][1]["face_pipeline"]["size"] == 64
    assert len(ensemble.preparer.transforms) == 2 and ensemble.input_of == [1, 0]  # the face column first
    alone = [Detector.load(tiny_ckpt), Detector.load(face_ckpt)]  # each through its own pipeline
    images: list = [*_images(face_folder), two_faces()]
    for image, pred in zip(images, ensemble.predict(images), strict=True):
        own = [member.predict(image)[0] for member in alone]
        assert pred.p_fake == pytest.approx(np.mean([p.p_fake for p in own]), abs=1e-6)
        assert pred.face == own[1].face  # the face member's faces are the ones reported
        assert [f["box"] for f in pred.faces or []] == [f["box"] for f in own[1].faces or []]
    two = ensemble.predict(two_faces())[0]
    assert two.face == "found" and len(two.faces) == 2
    assert two.p_fake == pytest.approx(max(f["p_fake"] for f in two.faces), abs=1e-9)  # one face member


def test_the_files_loop_and_the_service_agree_with_predict(
    ensemble: EnsembleDetector, tiny_ckpt: Path, face_ckpt: Path, face_folder: Path, tmp_path: Path
) -> None:
    from deepfake_lightning.predict import predict

    images = _images(face_folder)
    expected = {path.name: pred.p_fake for path, pred in zip(images, ensemble.predict(images), strict=True)}
    output = tmp_path / "out.csv"
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in images:
        (inputs / path.name).write_bytes(path.read_bytes())
    overrides = [
        f"ensemble=[{tiny_ckpt},{face_ckpt}]",
        f"input={inputs}",
        f"output={output}",
        "progress=false",
    ]
    assert predict(compose_entry("predict", overrides, tmp_path / "run"))["status"] == "ok"
    rows = {Path(r["path"]).name: float(r["p_fake"]) for r in csv.DictReader(output.open())}
    assert rows == pytest.approx(expected, abs=1e-5)
    for batch in (1, 8):  # the serial path and the dynamic batcher
        client = TestClient(create_app(ensemble, ServiceSettings(max_batch_size=batch)))
        buffer = io.BytesIO()
        Image.fromarray(two_faces()).save(buffer, "PNG")
        body = client.post("/v1/predict?explain=true", files={"file": ("two.png", buffer.getvalue())}).json()
        assert (
            body["n_faces"] == 2 and "crop" in body["explanation"]
        )  # the best face, as the face member saw it
        assert body["p_fake"] == pytest.approx(ensemble.predict(two_faces())[0].p_fake, abs=1e-5)


def test_forcing_one_pipeline_still_applies_it_to_every_member(ensemble: EnsembleDetector) -> None:
    whole = EnsembleDetector(ensemble.members, face_crop=False)
    assert not whole.per_member_faces and not whole.face_crop and len(whole.preparer.transforms) == 2
    haar = EnsembleDetector(ensemble.members, face_options={"detector": "haar"})
    assert not haar.per_member_faces and haar.describe()["face_pipeline"]["detector"] == "haar"
    assert len({id(p) for p in haar.preparer.pipelines}) == 1  # one pipeline for every column
    with pytest.raises(ValueError, match="different face pipelines"):  # crop, but with which pipeline?
        EnsembleDetector(ensemble.members, face_crop=True)


def test_the_fused_benchmark_row_is_what_the_ensemble_serves(
    ensemble: EnsembleDetector, tiny_ckpt: Path, face_ckpt: Path, face_folder: Path, tmp_path: Path
) -> None:
    """Both members evaluated on the same folder (as the benchmark's rows are), fused by `fuse_rows`: each image's
    fused p_fake equals the served ensemble's. Eval crops the largest face and predict scores every face, so
    images where the face member finds more than one face are left out (LFW photos: rarely)."""
    evals = {}
    for name, ckpt in (("whole", tiny_ckpt), ("aligned", face_ckpt)):
        overrides = [
            "data=folder", f"data.root={face_folder}", "data.use_all_for_test=true",
            f"+extra_eval_sets.photos.root={face_folder}", "explain.enabled=false", "n_bootstrap=0",
        ]  # fmt: skip
        cfg = eval_config(tmp_path, f"eval_{name}", ckpt, overrides)
        evaluate(cfg)
        evals[f"tiny {name}"] = Path(cfg.paths.output_dir)
    fuse_rows("ensemble: tiny whole + tiny aligned", evals, tmp_path / "ens")
    fused = read_predictions_csv(tmp_path / "ens" / "cross_dataset" / "photos_predictions.csv")
    assert len(fused["path"]) == 11
    served = dict(zip(fused["path"], ensemble.predict(fused["path"]), strict=True))
    single = {p: pred.p_fake for p, pred in served.items() if len(pred.faces or []) <= 1}  # the face member's
    assert len(single) >= 8
    by_path = dict(zip(fused["path"], fused["p_fake"], strict=True))
    assert {p: by_path[p] for p in single} == pytest.approx(single, abs=1e-5)
