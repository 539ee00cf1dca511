"""The data module hands the model NHWC batches (the measured fast path) without changing a value."""

from __future__ import annotations

import torch

from deepfake_lightning.data.datamodule import DeepfakeDataModule


def test_batches_become_channels_last_with_the_same_values() -> None:
    images = torch.randn(2, 3, 8, 8)
    batch = {"image": images.clone(), "target": torch.zeros(2), "path": ["a", "b"], "skipped": []}
    out = DeepfakeDataModule(root=".", channels_last=True).on_after_batch_transfer(batch, 0)
    assert out["image"].is_contiguous(memory_format=torch.channels_last)
    assert not images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out["image"], images)


def test_channels_last_off_and_empty_batches_are_left_alone() -> None:
    batch = {"image": torch.randn(2, 3, 8, 8), "target": torch.zeros(2)}
    out = DeepfakeDataModule(root=".", channels_last=False).on_after_batch_transfer(batch, 0)
    assert out["image"].is_contiguous()
    empty = {"image": torch.empty(0), "target": torch.empty(0), "path": [], "skipped": ["bad.jpg"]}
    assert DeepfakeDataModule(root=".").on_after_batch_transfer(empty, 0)["image"].numel() == 0
