"""`data.augment_on=device`: train workers hand over uint8; the device augments per image and normalises."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.device_augment import DeviceAugment
from deepfake_lightning.train import train
from tests.conftest import CONF_DIR, make_folder_tree

BASE = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / "_base.yaml"))
AUGMENT, NORMALIZE = BASE["augment"], BASE["normalize"]
OFF = {name: group | {"enabled": False} for name, group in AUGMENT.items() if isinstance(group, dict)}


def _module(root: Path, augment_on: str, augment: dict) -> DeepfakeDataModule:
    return DeepfakeDataModule(
        root=str(root),
        layout="folder",
        image_size=32,
        batch_size=8,
        num_workers=0,
        augment=augment,
        augment_on=augment_on,
        split_ratios=[0.5, 0.5, 0.0],
    )


def test_train_batches_without_augmentation_match_the_cpu_pipeline(tmp_path: Path) -> None:
    root = make_folder_tree(tmp_path / "faces", per_class=8)
    cpu, device = _module(root, "cpu", OFF), _module(root, "device", OFF)
    torch.manual_seed(0)
    expected = next(iter(cpu.train_dataloader()))
    torch.manual_seed(0)
    raw = next(iter(device.train_dataloader()))
    assert raw["image"].dtype == torch.uint8  # a quarter of the bytes to copy to the GPU
    assert raw["path"] == expected["path"]
    out = device.on_after_batch_transfer(raw, 0)["image"]
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected["image"], atol=1e-5, rtol=0)
    assert next(iter(device.val_dataloader()))["image"].dtype == torch.float32  # eval loaders: CPU path


def test_augmentation_parameters_are_drawn_per_image() -> None:
    augment = {"geometric": AUGMENT["geometric"] | {"hflip_p": 0.0, "affine_p": 1.0, "perspective_p": 0.0}}
    augmenter, plain = DeviceAugment(augment, NORMALIZE), DeviceAugment(OFF, NORMALIZE)
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(0)
    out = augmenter(image.repeat(4, 1, 1, 1))
    assert not torch.allclose(out[0], plain(image)[0], atol=1e-3)  # affine applied
    assert not torch.allclose(out[0], out[1], atol=1e-3)  # with its own parameters per image


def test_only_enabled_groups_run_on_the_device_and_cpu_groups_stay_in_workers(tmp_path: Path) -> None:
    assert DeviceAugment(OFF, NORMALIZE).augment is None
    geometric = AUGMENT["geometric"] | {"hflip_p": 1.0, "affine_p": 0.0, "perspective_p": 0.0}
    image = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    flipped = DeviceAugment(OFF | {"geometric": geometric}, NORMALIZE)(image)
    torch.testing.assert_close(flipped, DeviceAugment(OFF, NORMALIZE)(image.flip(-1)))
    root = make_folder_tree(tmp_path / "faces", per_class=8)
    jpeg = OFF | {"jpeg": AUGMENT["jpeg"] | {"enabled": True}, "geometric": AUGMENT["geometric"]}
    steps = _module(root, "device", jpeg)._dataset("train", train=True).transform.compose.transforms
    names = [type(step).__name__ for step in steps]
    assert "ImageCompression" in names and "Affine" not in names and "Normalize" not in names


def test_bad_values_are_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="expects uint8 images"):
        DeviceAugment(OFF, NORMALIZE)(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"^data.augment_on='gpu': expected cpu or device$"):
        _module(tmp_path, "gpu", OFF)


def test_training_with_device_augmentation(compose_cfg, tmp_path: Path) -> None:
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", "data.augment_on=device"])
    assert train(cfg)["status"] == "ok"
    run = Path(cfg.paths.output_dir)
    history = json.loads((run / "training_history.json").read_text())
    assert math.isfinite(history[0]["train/loss"]) and math.isfinite(history[0]["val/loss"])
    assert json.loads((run / "test_results.json").read_text())["n"] > 0
