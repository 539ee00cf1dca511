"""Backbone choice: torchvision MobileNetV2 (default) or any timm model, wired by channel count, at 64 px."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import pytest
import timm
import torch
from torch import nn
from torch.utils.data import DataLoader

from deepfake_lightning.bundle import open_model
from deepfake_lightning.models import WeightsError, build_backbone, build_detector
from deepfake_lightning.models.backbones import backbone_tensor_count
from deepfake_lightning.modules import DetectorModule
from deepfake_lightning.utils.config_validation import ConfigError, validate_config
from tests.sweep_helpers import run_train, tiny_synthetic

TINY_TIMM = "mobilenetv3_small_050"  # 288 channels, 138 tensors: the cheapest timm family member here
SMALL = {"attention": {"enabled": True, "hidden": 32}, "head": {"hidden": [16], "dropout": [0.1, 0.1]}}
FAMILIES = [
    ("mobilenet_v2", 1280, 156),
    (f"timm:{TINY_TIMM}", 288, 138),
    ("timm:resnet18", 512, 60),
]


@pytest.mark.parametrize("name,channels,tensors", FAMILIES)
def test_family_forward_channels_and_freezing(name: str, channels: int, tensors: int) -> None:
    net = build_detector({"name": name, "weights": None, "freeze_first_n": 7}, **SMALL)
    assert net.backbone.out_channels == channels
    assert net.attention.gate[0].in_channels == channels and net.attention.gate[-2].out_channels == channels
    assert net.head.mlp[1].in_features == channels
    assert backbone_tensor_count(name) == tensors == len(list(net.backbone.features.parameters()))
    flags = [p.requires_grad for p in net.backbone.features.parameters()]
    assert flags[:7] == [False] * 7 and all(flags[7:])
    net.train()
    frozen_bn = [
        m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad
    ]
    assert frozen_bn and all(not m.training for m in frozen_bn)
    assert all(
        m.training for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d) and m.weight.requires_grad
    )
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2,) and net.attention.last_map.shape == (2, 1, 2, 2)


def test_freeze_count_above_the_timm_tensor_count_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=rf"freeze_first_n=139: expected an integer in 0..138 \(parameter tensors of the timm {TINY_TIMM}",
    ):
        build_backbone({"name": f"timm:{TINY_TIMM}", "freeze_first_n": 139})


def test_unknown_backbone_names_are_refused() -> None:
    with pytest.raises(ValueError, match="timm has no such model.*timm.list_models"):
        build_backbone({"name": "timm:resnet_does_not_exist"})
    with pytest.raises(ValueError, match=r"model.backbone.name='resnet18': expected mobilenet_v2 or timm:"):
        build_backbone({"name": "resnet18"})


def test_timm_weights_file_loads_and_a_wrong_file_is_refused(tmp_path: Path) -> None:
    full = timm.create_model(TINY_TIMM)
    path = tmp_path / "mnv3.pth"
    torch.save(full.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backbone = build_backbone({"name": f"timm:{TINY_TIMM}", "weights": str(path), "sha256": digest})
    reference = full.state_dict()
    loaded = backbone.features.state_dict()
    assert loaded and all(torch.equal(tensor, reference[key]) for key, tensor in loaded.items())
    with pytest.raises(WeightsError, match="SHA-256"):
        build_backbone({"name": f"timm:{TINY_TIMM}", "weights": str(path), "sha256": "0" * 64})
    other = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18").state_dict(), other)
    # timm's own features_only loading is non-strict and would keep random weights without a word
    with pytest.raises(WeightsError, match=rf"tensors of timm {TINY_TIMM} missing"):
        build_backbone({"name": f"timm:{TINY_TIMM}", "weights": str(other)})
    with pytest.raises(WeightsError, match="file not found"):
        build_backbone({"name": f"timm:{TINY_TIMM}", "weights": str(tmp_path / "absent.pth")})
    with pytest.raises(
        WeightsError, match="expected null, a weights file, a registry name .* or 'pretrained'"
    ):
        build_backbone({"name": f"timm:{TINY_TIMM}", "weights": "IMAGENET1K_V1"})


def test_hub_weights_that_cannot_be_fetched_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub here: the request must fail naming the offline way out, never fall back to random weights."""

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr("timm.models._builder.load_pretrained", offline)
    with pytest.raises(WeightsError, match=r"could not load timm weights.*model.backbone.weights=null"):
        build_backbone({"name": f"timm:{TINY_TIMM}", "weights": "pretrained"})


class _Batches(torch.utils.data.Dataset):
    def __init__(self, n: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 64, 64, generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"image": self.images[i], "target": torch.tensor(float(i % 2)), "path": f"img{i}.png"}


def test_timm_checkpoint_round_trip(tmp_path: Path) -> None:
    module = DetectorModule(backbone={"name": f"timm:{TINY_TIMM}", "freeze_first_n": 20}, **SMALL)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(_Batches(), batch_size=4))
    path = tmp_path / "timm.ckpt"
    trainer.save_checkpoint(path)
    images = _Batches().images[:3]
    with torch.no_grad():
        expected = module.eval()(images)
        for restored in (
            DetectorModule.load_from_checkpoint(path),
            open_model(path, calibration=None).module,
        ):
            assert restored.hparams["backbone"]["name"] == f"timm:{TINY_TIMM}"
            assert torch.equal(restored.eval()(images), expected)


def test_export_and_folded_torch_path_match_for_timm(tmp_path: Path) -> None:
    """ONNX export and the BatchNorm-folded torch path (timm's BatchNormAct2d must not be folded as a plain BN)."""
    from deepfake_lightning.bench.models import reestimate_batchnorm
    from deepfake_lightning.inference.backends import OnnxBackend, TorchBackend
    from deepfake_lightning.inference.export_model import export_onnx

    torch.manual_seed(0)
    # mobilenetv3 has timm's BatchNormAct2d; the softmax attention is exported here too (channel_gate is
    # covered by tests/test_inference_export.py)
    net = build_detector(
        {"name": f"timm:{TINY_TIMM}"}, {**SMALL["attention"], "kind": "softmax"}, SMALL["head"]
    )
    reestimate_batchnorm(net, [torch.randn(8, 3, 64, 64)])  # non-trivial statistics, so folding matters
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = net.eval()(images).numpy()
    folded, _ = TorchBackend(net, optimize=True)(images)
    assert abs(folded - expected).max() < 1e-3
    path = export_onnx(net, tmp_path / "timm.onnx", image_size=64)
    logits, attention = OnnxBackend(path)(images)
    assert abs(logits - expected).max() < 1e-4 and attention.shape == (3, 1, 2, 2)


def test_gradcam_explanations_work_with_a_timm_backbone() -> None:
    from deepfake_lightning.evaluation.explanations import explain_batch

    net = build_detector({"name": f"timm:{TINY_TIMM}"}, **SMALL)
    maps = explain_batch(net, torch.randn(2, 3, 64, 64), [0, 1])
    assert maps["gradcam"].shape == (2, 64, 64) and maps["attention"].shape == (2, 64, 64)


def test_config_validation_names_unknown_timm_models(compose_cfg) -> None:
    cfg = compose_cfg("train", ["model.backbone.name=timm:resnet_does_not_exist"], tiny=False)
    with pytest.raises(
        ConfigError, match=r"^model.backbone.name='timm:resnet_does_not_exist': .*timm.list_models"
    ) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)
    cfg = compose_cfg("train", ["model.attention.kind=gate"], tiny=False)
    with pytest.raises(
        ConfigError, match=r"^model.attention.kind='gate': expected channel_gate, spatial or softmax$"
    ):
        validate_config(cfg)
    cfg = compose_cfg("train", [f"model.backbone.name=timm:{TINY_TIMM}", "model.backbone.freeze_first_n=150"])
    with pytest.raises(ConfigError, match=r"freeze_first_n=150: expected an integer in 0..138 \(parameter"):
        validate_config(cfg)
    validate_config(
        compose_cfg("train", [f"model.backbone.name=timm:{TINY_TIMM}", "model.backbone.freeze_first_n=138"])
    )


def test_multirun_over_two_backbones(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train(
        "-m",
        *tiny_synthetic(tmp_path),
        f"model.backbone.name=mobilenet_v2,timm:{TINY_TIMM}",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["ok", "ok"], summary
    names = [
        open_model(next((sweep / str(j)).rglob("*.ckpt")), calibration=None).hparams["backbone"]["name"]
        for j in (0, 1)
    ]
    assert names == ["mobilenet_v2", f"timm:{TINY_TIMM}"]
