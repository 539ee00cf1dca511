"""Any timm model as the backbone: its last `features_only` level, with explicit, never-silent weight loading.

ViT-family models (a token grid, not a feature pyramid) are built by `vit_features`: last block, final norm,
any input size. Registry names (`python -m deepfake_lightning.weights --list`) are weights too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from deepfake_lightning.models.backbone import WeightsError, check_sha256
from deepfake_lightning.models.feature_backbone import FeatureBackbone
from deepfake_lightning.models.vit_features import create_token_features, is_token_model
from deepfake_lightning.utils.hashing import sha256_file
from deepfake_lightning.weights import REGISTRY, cache_path

log = logging.getLogger(__name__)
TIMM_PRETRAINED = (
    "pretrained"  # model.backbone.weights value asking for timm's own weights (hub or its cache)
)


def _create(model_name: str, image_size: int | None = None, **kwargs: object) -> nn.Module:
    """`timm.create_model(features_only=True)` for the last feature level only (`vit_features` for ViTs)."""
    # lazy: timm costs more than torch to import (23.9 s vs 19.8 s, -X importtime, load 15); only timm:<model> needs it
    import timm

    if not timm.is_model(model_name):
        pattern = model_name.split(".")[0][:6]  # resnet_does_not_exist -> resnet*
        raise ValueError(
            f"model.backbone.name='timm:{model_name}': timm has no such model; list them with: "
            f"python -c \"import timm; print(timm.list_models('{pattern}*'))\""
        )
    try:
        if is_token_model(model_name):
            return create_token_features(model_name, image_size, **kwargs)
        return timm.create_model(model_name, features_only=True, out_indices=(-1,), **kwargs)
    except WeightsError:
        raise
    except Exception as err:
        if kwargs.get("pretrained"):  # hub unreachable, not in the cache, corrupt download...
            raise WeightsError(
                f"could not load timm weights for {model_name} ({err.__class__.__name__}: {str(err)[:300]}). "
                f"Offline: on a machine with internet save torch.save(timm.create_model({model_name!r}, "
                "pretrained=True).state_dict(), 'FILE.pth') and pass model.backbone.weights=FILE.pth, or "
                "train from scratch with model.backbone.weights=null"
            ) from err
        raise ValueError(
            f"model.backbone.name='timm:{model_name}': timm cannot build it with features_only=True "
            f"({err.__class__.__name__}: {err})"
        ) from None


def count_timm_tensors(model_name: str) -> int:
    """Parameter tensors of the `features_only` extractor, counted on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return len(list(_create(model_name).parameters()))


def _verified_file(model_name: str, path: Path, sha256: str | None) -> Path:
    """Check the file against the full timm model: timm's own feature loading is non-strict and would ignore
    a file of another architecture, leaving random weights without a word."""
    # lazy: timm costs more than torch to import (23.9 s vs 19.8 s, -X importtime, load 15); only timm:<model> needs it
    import timm
    from timm.models import load_state_dict

    check_sha256(path, sha256)
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path}: not a loadable weights file ({err.__class__.__name__}: {err})") from err
    with torch.device("meta"):
        full = timm.create_model(model_name)
    classifiers = full.pretrained_cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    expected = {
        key: value
        for key, value in full.state_dict().items()
        if not key.startswith(tuple(f"{c}." for c in classifiers))
    }
    missing = [key for key in expected if key not in state]
    wrong = [
        key for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if missing or wrong:
        example = (missing or wrong)[0]
        raise WeightsError(
            f"{path}: {len(missing)} tensors of timm {model_name} missing and {len(wrong)} of another shape "
            f"(e.g. {example}); expected a state_dict saved from timm.create_model({model_name!r})"
        )
    return path


class TimmBackbone(FeatureBackbone):
    """timm `create_model(name, features_only=True)`, last feature level; channels from `feature_info`.

    `weights`: null (random init), a local state_dict file of the same timm model (.pth/.bin/.safetensors,
    optionally checked against `sha256`), a registry name of `deepfake_lightning.weights` made for this model
    (`dinov2_vits14`, `efficientnet_lite2`: fetched by `make weights`, checked against the registry's SHA-256),
    or "pretrained" for timm's own weights (Hugging Face hub or its local cache). Anything that cannot be loaded
    raises `WeightsError`; random weights are never a silent fallback. `image_size` (the run's) builds a ViT for
    that input size; other backbones ignore it.
    """

    def __init__(
        self,
        model_name: str,
        weights: str | None = None,
        freeze_first_n: int = 0,
        sha256: str | None = None,
        image_size: int | None = None,
    ) -> None:
        features = _create(model_name, image_size, **_pretrained_kwargs(model_name, weights, sha256))
        channels = int(features.feature_info.channels()[-1])
        super().__init__(features, channels, freeze_first_n, name=f"timm:{model_name}")
        self.model_name = model_name
        output_fmt = getattr(features, "output_fmt", "NCHW")
        self.channels_last_output = str(getattr(output_fmt, "value", output_fmt)) == "NHWC"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)[-1]
        return out.permute(0, 3, 1, 2) if self.channels_last_output else out  # swin & co. give NHWC


def _registry_entry(model_name: str, weights: str | None):
    """The `deepfake_lightning.weights` entry named `weights`, if it is one; refused for another model."""
    entry = REGISTRY.get(str(weights)) if weights is not None else None
    if entry is None:
        return None
    if entry.timm_model is None or entry.timm_model != model_name.split(".")[0]:
        raise WeightsError(
            f"model.backbone.weights={weights!r} is for "
            f"{'timm:' + entry.timm_model if entry.timm_model else 'another backbone'}, not timm:{model_name}"
        )
    return entry


def _registry_file(model_name: str, weights: str | None) -> Path | None:
    """The cached, SHA-256-checked file of a registry name; a missing or altered file says how to fetch it."""
    entry = _registry_entry(model_name, weights)
    if entry is None:
        return None
    path = cache_path(entry.name)
    fetch = f"run `python -m deepfake_lightning.weights {entry.name}` (or `make weights`; offline too)"
    if not path.is_file():
        raise WeightsError(f"model.backbone.weights={entry.name!r}: {path} not found; {fetch}")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise WeightsError(
            f"model.backbone.weights={entry.name!r}: SHA-256 of {path} is {actual}, expected {entry.sha256}; "
            f"{fetch} to replace it"
        )
    return path


def _pretrained_kwargs(model_name: str, weights: str | None, sha256: str | None) -> dict[str, object]:
    if weights is None:
        return {}
    registered = _registry_file(model_name, weights)
    if registered is not None:
        return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(registered)}}
    path = Path(str(weights)).expanduser()
    if path.is_file():
        return {
            "pretrained": True,
            "pretrained_cfg_overlay": {"file": str(_verified_file(model_name, path, sha256))},
        }
    if str(weights) != TIMM_PRETRAINED:
        if os.sep in str(weights) or str(weights).endswith((".pth", ".pt", ".bin", ".safetensors")):
            raise WeightsError(f"model.backbone.weights={weights!r}: file not found")
        raise WeightsError(
            f"model.backbone.weights={weights!r} for timm:{model_name}: expected null, a weights file, a "
            f"registry name (python -m deepfake_lightning.weights --list) or {TIMM_PRETRAINED!r} (timm's own)"
        )
    return {"pretrained": True, **_hub_source(model_name)}


def _hub_source(model_name: str) -> dict[str, object]:
    """timm would warn and keep random weights for a model that has none: refuse that instead."""
    # lazy: timm costs more than torch to import (23.9 s vs 19.8 s, -X importtime, load 15); only timm:<model> needs it
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise WeightsError(
            f"model.backbone.weights={TIMM_PRETRAINED!r}: timm has no pretrained weights for {model_name}; "
            "pass a weights file or model.backbone.weights=null"
        )
    return {}
