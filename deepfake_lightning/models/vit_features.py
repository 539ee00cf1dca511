"""ViT-family timm models as a backbone: the last block's patch tokens, after the final norm, as (B, C, H/p, W/p).

timm builds `features_only` for these models with `FeatureGetterNet` (`forward_intermediates`), which drops the
model's final LayerNorm. DINOv2's features include it (it is Hugging Face `Dinov2Model.last_hidden_state`), so
the getter is built here with `norm=True`; the attention and head then see a map like any CNN's.

Input size: `dynamic_img_size=True`, so any size works (a multiple of the patch size uses every pixel: 224 and 112
px for /14). When the run's `image_size` is known the network is built for it (`img_size=`) and the position
table is resampled once, at load time, to that grid.

That resampling of a weights file's table (a registry file such as `dinov2_vits14`, or a state_dict file) is
bicubic *without* antialiasing, as DINOv2 and Hugging Face's Dinov2Model do. timm antialiases (its own
`pretrained` weights and any size other than the build size go through timm): for the converted DINOv2-S at 224
px that moves the output by up to 0.37, against 2e-5 with the plain bicubic (tests/test_encoders.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from torch import nn

from deepfake_lightning.models.backbone import WeightsError


@cache
def is_token_model(model_name: str) -> bool:
    """timm gives this model's features through `forward_intermediates` and it takes `dynamic_img_size`
    (ViT, DeiT, DINOv2, EVA...); built on the meta device, so no memory and no weights."""
    # lazy: timm costs more than torch to import (23.9 s vs 19.8 s, -X importtime, load 15)
    import timm
    from timm.models._features import FeatureGetterNet  # not re-exported by timm.models

    with torch.device("meta"):
        try:
            features = timm.create_model(model_name, features_only=True, out_indices=(-1,))
        except Exception:  # the caller's own creation reports it
            return False
    return isinstance(features, FeatureGetterNet) and hasattr(features.model, "dynamic_img_size")


def _load_file(model: nn.Module, path: Path) -> None:
    """Strict load of a state_dict file (classifier dropped), its position table resampled without antialias."""
    # lazy: timm costs more than torch to import (23.9 s vs 19.8 s, -X importtime, load 15)
    from timm.layers import resample_abs_pos_embed
    from timm.models import load_state_dict

    state = load_state_dict(str(path), weights_only=True)
    classifiers = model.pretrained_cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{c}." for c in classifiers))}
    table = state.get("pos_embed")
    if table is not None and getattr(model, "pos_embed", None) is not None:
        if table.shape != model.pos_embed.shape:
            prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
            state["pos_embed"] = resample_abs_pos_embed(
                table, new_size=model.patch_embed.grid_size, num_prefix_tokens=prefix, antialias=False
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(
            f"{path}: does not load into timm {model.pretrained_cfg.get('architecture')}: {str(err)[:300]}"
        ) from None


def create_token_features(
    model_name: str, image_size: int | None = None, pretrained: bool = False, **kwargs: object
) -> nn.Module:
    """The `FeatureGetterNet` of `model_name` with its final norm; weights as `TimmBackbone` resolved them
    (`pretrained_cfg_overlay={"file": ...}` for a file, else timm's own when `pretrained`)."""
    # lazy: timm costs more than torch to import (23.9 s vs 19.8 s, -X importtime, load 15)
    import timm
    from timm.models._features import FeatureGetterNet  # not re-exported by timm.models

    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    file = overlay.pop("file", None)
    size = {"img_size": int(image_size)} if image_size else {}
    model = timm.create_model(
        model_name,
        pretrained=pretrained and file is None,
        num_classes=0,
        dynamic_img_size=True,
        pretrained_cfg_overlay=overlay or None,
        **size,
        **kwargs,
    )
    if file is not None:
        _load_file(model, Path(file))
    return FeatureGetterNet(model, out_indices=(-1,), norm=True)
