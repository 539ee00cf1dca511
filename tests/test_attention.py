"""Attention kinds: the published channel gate stays as it was; the spatial kinds learn to pick a location."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfake_lightning.models import build_detector
from deepfake_lightning.models.attention import SpatialAttention

SIDE, CHANNELS = 4, 8


def toy_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Feature maps where only one location per image holds the label, and a marker channel says which one.

    Elsewhere the same channels carry strong noise, so average pooling alone drowns the signal: a model that
    scores well has to weight the marked location up.
    """
    labels = torch.randint(0, 2, (n,), generator=generator)
    where = torch.randint(0, SIDE * SIDE, (n,), generator=generator)
    x = 2.0 * torch.randn(n, CHANNELS, SIDE * SIDE, generator=generator)
    x[:, 0] = 0.0
    rows = torch.arange(n)
    x[rows, 0, where] = 3.0
    x[rows, 1:, where] = (2.0 * labels.float() - 1.0)[:, None] + 0.1 * torch.randn(
        n, CHANNELS - 1, generator=generator
    )
    return x.view(n, CHANNELS, SIDE, SIDE), labels.float(), where


def train_toy(attention: SpatialAttention, steps: int = 300) -> tuple[nn.Module, float]:
    """Tiny tensors: one thread is fastest (two threads spin for nothing on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_toy(attention, steps)
    finally:
        torch.set_num_threads(threads)


def _train_toy(attention: SpatialAttention, steps: int) -> tuple[nn.Module, float]:
    torch.manual_seed(0)
    model = nn.Sequential(attention, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(CHANNELS, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y, _ = toy_batch(64, generator)
        optimizer.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y).backward()
        optimizer.step()
    x, y, _ = toy_batch(512, torch.Generator().manual_seed(1))
    with torch.no_grad():
        accuracy = ((model(x).squeeze(1) > 0).float() == y).float().mean().item()
    return model, accuracy


@pytest.mark.parametrize("kind", ["spatial", "softmax"])
def test_spatial_kinds_learn_where_to_look(kind: str) -> None:
    attention = SpatialAttention(CHANNELS, hidden=16, kind=kind)
    model, accuracy = train_toy(attention)
    _, baseline = train_toy(SpatialAttention(CHANNELS, hidden=16, enabled=False))
    x, _, where = toy_batch(256, torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(x)
    shown = attention.last_map.flatten(1)
    rows = torch.arange(len(x))
    marked = shown[rows, where]
    others = (shown.sum(1) - marked) / (SIDE * SIDE - 1)
    assert shown.min() >= 0.0 and shown.max() <= 1.0
    assert (shown.amax(1) - shown.amin(1)).median() > 0.3, "the map is (nearly) flat: it selects nothing"
    assert (marked > others).float().mean() > 0.95 and (marked - others).mean() > 0.3
    assert accuracy > baseline + 0.15 and accuracy > 0.9, (accuracy, baseline)


def test_channel_gate_is_the_published_default() -> None:
    net = build_detector(
        {"weights": None},
        {"enabled": True, "hidden": 256},
        {"hidden": [512, 256], "dropout": [0.5, 0.35, 0.25]},
    )
    assert net.attention.kind == "channel_gate"
    assert [tuple(p.shape) for p in net.attention.parameters()] == [
        (256, 1280, 1, 1),
        (256,),
        (1280, 256, 1, 1),
        (1280,),
    ]
    spatial = build_detector(
        {"weights": None}, {"hidden": 256, "kind": "spatial"}, {"hidden": [512], "dropout": [0.5, 0.5]}
    )
    assert [tuple(p.shape) for p in spatial.attention.parameters()][2:] == [(1, 256, 1, 1), (1,)]
    with pytest.raises(
        ValueError, match=r"^model.attention.kind='gate': expected channel_gate, spatial or softmax$"
    ):
        SpatialAttention(8, kind="gate")


def test_softmax_map_is_a_distribution_and_uniform_means_identity() -> None:
    attention = SpatialAttention(CHANNELS, hidden=4, kind="softmax")
    nn.init.zeros_(attention.gate[2].weight)  # a constant score: uniform weights
    x = torch.randn(3, CHANNELS, SIDE, SIDE)
    assert torch.allclose(attention(x), x, atol=1e-6)
    assert torch.allclose(attention.last_map.sum(dim=(2, 3)), torch.ones(3, 1))


def test_a_flat_map_is_drawn_flat_and_called_flat() -> None:
    """Min-max stretching would turn a 0.500-0.505 gate into a full-range 'focus'; the overlays must not."""
    import numpy as np

    from deepfake_lightning.evaluation.explanations import _range_title, explain_batch, is_flat
    from deepfake_lightning.inference.explain import overlay

    assert is_flat(0.50, 0.51) and not is_flat(0.1, 0.9)
    crop = np.full((32, 32, 3), 128, dtype=np.uint8)
    heat = np.array([[0.500, 0.505], [0.500, 0.502]], dtype=np.float32)
    assert overlay(crop, heat, relative=True).std(axis=(0, 1)).max() < 2.0
    assert overlay(crop, heat).std(axis=(0, 1)).max() > 20.0  # what min-max scaling would have drawn
    torch.manual_seed(0)
    net = build_detector({"weights": None}, {"hidden": 32}, {"hidden": [16], "dropout": [0.1, 0.1]})
    maps = explain_batch(net, torch.randn(2, 3, 64, 64), [0, 1])
    assert maps["attention"].min() > 0.9  # the fresh channel gate's mean is ~0.5 everywhere: drawn flat
    assert _range_title(maps["attention_range"], 0).endswith("(flat)")
