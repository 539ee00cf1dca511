"""Explanations: outcome-group sampling, attention and Grad-CAM maps, the explanations.png grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_lightning.data.dataset import ImageDataset
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.evaluation.explanations import explain_batch, sample_groups, write_explanations
from deepfake_lightning.modules import DetectorModule
from tests.conftest import make_folder_tree

NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def test_sample_groups_covers_each_outcome_and_is_seeded() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    p_fake = np.array([0.1, 0.2, 0.9, 0.8, 0.7, 0.6, 0.3])  # one false positive (2), one miss (6)
    groups = sample_groups(labels, p_fake, 0.5, n_per_group=2, seed=0)
    assert len(groups["real, predicted real"]) == 2 and set(groups["real, predicted real"]) == {0, 1}
    assert groups["real, predicted fake"] == [2] and groups["fake, predicted real"] == [6]
    assert len(groups["fake, predicted fake"]) == 2 and set(groups["fake, predicted fake"]) <= {3, 4, 5}
    assert groups == sample_groups(labels, p_fake, 0.5, n_per_group=2, seed=0)
    assert sample_groups(labels, p_fake, 0.95, n_per_group=5)["real, predicted fake"] == []


@pytest.mark.parametrize("attention", [True, False])
def test_maps_cover_the_image_and_stay_in_unit_range(attention: bool) -> None:
    torch.manual_seed(0)
    net = DetectorModule(attention={"enabled": attention}, backbone={"freeze_first_n": 156}).net
    images = torch.randn(3, 3, 64, 64)
    maps = explain_batch(net, images, predicted=[0, 1, 1])
    assert maps["gradcam"].shape == (3, 64, 64)
    assert maps["gradcam"].min() >= 0.0 and maps["gradcam"].max() <= 1.0
    assert maps["gradcam"].max() > 0.0  # gradients reached the map although the backbone is frozen
    if attention:
        low, high = maps["attention_range"][0]
        assert 0.0 <= low <= high <= 1.0  # raw sigmoid gate values, kept for the panel title
        assert (
            maps["attention"].shape == (3, 64, 64)
            and 0.0 <= maps["attention"].min() <= maps["attention"].max() <= 1.0
        )
    else:
        assert maps["attention"] is None and maps["attention_range"] is None


def test_write_explanations_draws_the_grid(tmp_path: Path) -> None:
    root = make_folder_tree(tmp_path / "faces", per_class=3, size=40)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    labels = np.array([int("/fake/" in p) for p in paths])
    predictions = {"path": paths, "label": labels, "p_fake": np.linspace(0.05, 0.95, len(paths))}
    dataset = ImageDataset(
        [(p, int(y)) for p, y in zip(paths, labels, strict=True)],
        build_eval_transform(64, "resize", NORMALIZE),
    )
    module = DetectorModule()
    module.net.train()
    out = write_explanations(
        module, predictions, 0.5, dataset, NORMALIZE, tmp_path / "explanations.png", n_per_group=1
    )
    assert out.stat().st_size > 0
    assert module.net.training  # the caller's train/eval mode is restored
