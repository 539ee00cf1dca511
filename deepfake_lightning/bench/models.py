"""The network every model bench measures: a trained checkpoint, or advanced_v2 as configured."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from deepfake_lightning.bundle import open_model
from deepfake_lightning.models import DeepfakeDetector, build_detector
from deepfake_lightning.modules.losses import BinaryLoss

PRECISIONS = {"fp32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def load_network(
    model_cfg: Mapping[str, Any], ckpt_path: str | None
) -> tuple[DeepfakeDetector, dict[str, Any]]:
    """(network in eval mode, eval preprocessing); the checkpoint's own preprocessing wins when given."""
    if ckpt_path:
        model = open_model(ckpt_path, calibration=None)
        return model.net.eval(), dict(model.preprocessing)
    net = build_detector(dict(model_cfg["backbone"]), dict(model_cfg["attention"]), dict(model_cfg["head"]))
    return net.eval(), {}


def prepared(net: nn.Module, device: torch.device, channels_last: bool, train: bool = False) -> nn.Module:
    """A private copy on `device`, in the memory format asked for (weights are shared by value, not by object)."""
    model = copy.deepcopy(net).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.train(train)


def autocast(device: torch.device, precision: str) -> Any:
    """Autocast context for a mixed precision; a no-op context for fp32."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def precisions_for(device: torch.device, wanted: list[str]) -> list[str]:
    """fp16 autocast only on CUDA (on CPU it is slower than fp32); bf16 where the device supports it."""
    keep = []
    for precision in wanted:
        if precision == "16-mixed" and device.type != "cuda":
            continue
        if precision == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        keep.append(precision)
    return keep


@torch.no_grad()
def reestimate_batchnorm(net: nn.Module, batches: list[torch.Tensor]) -> None:
    """Running BatchNorm statistics from real images, so a randomly initialised network has sane activations."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average over the batches
    net.train()
    for batch in batches:
        if len(batch) > 1:
            net(batch)
    for module, momentum in zip(norms, momenta, strict=True):
        module.momentum = momentum
    net.eval()


def fit_head(
    net: DeepfakeDetector,
    images: torch.Tensor,
    targets: torch.Tensor,
    loss_cfg: Mapping[str, Any],
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> float:
    """Train attention + head on cached backbone features: a cheap stand-in for a trained checkpoint.

    The backbone stays as it is (random init, BatchNorm re-estimated), so the quantization error of every
    layer is still measured, and the head learns enough of the synthetic traces for AUROC to mean something.
    Returns the last training loss.
    """
    with torch.no_grad():
        features = torch.cat([net.backbone(chunk) for chunk in images.split(batch_size)])
    trainable = [*net.attention.parameters(), *net.head.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    loss_fn = BinaryLoss(**loss_cfg)
    generator = torch.Generator().manual_seed(0)
    net.attention.train()
    net.head.train()
    loss = torch.zeros(())
    for _ in range(steps):
        pick = torch.randperm(len(features), generator=generator)[: max(2, min(batch_size, len(features)))]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net.head(net.pool(net.attention(features[pick])).flatten(1)), targets[pick])
        loss.backward()
        optimizer.step()
    net.eval()
    return float(loss)
