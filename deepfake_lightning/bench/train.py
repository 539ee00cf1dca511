"""Training step: images/s of forward + loss + backward + AdamW step, by size, precision, memory format, compile.

Inputs are random tensors already on the device: this measures the model step alone (the input pipeline has
its own rows). The baseline is eager fp32 with contiguous (NCHW) tensors at the same batch size: training one
image at a time is not a thing anyone does (and BatchNorm refuses a batch of one).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any

import torch

from deepfake_lightning.bench.models import autocast, precisions_for, prepared
from deepfake_lightning.bench.rows import PeakMemory, Row, device_label, make_row, sync_for, time_calls
from deepfake_lightning.models import DeepfakeDetector
from deepfake_lightning.modules.losses import BinaryLoss

log = logging.getLogger(__name__)


def train_step_fn(
    net: DeepfakeDetector,
    device: torch.device,
    image_size: int,
    batch_size: int,
    precision: str,
    channels_last: bool,
    compile_model: bool,
    loss_cfg: Mapping[str, Any],
) -> Any:
    """A closure running one optimisation step on a fixed random batch."""
    model = prepared(net, device, channels_last, train=True)
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = BinaryLoss(**loss_cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = (torch.arange(batch_size) % 2).float().to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = loss_fn(step_model(images), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def bench_train(
    net: DeepfakeDetector, device: torch.device, cfg: Mapping[str, Any], loss_cfg: Mapping[str, Any]
) -> list[Row]:
    rows = []
    precisions = precisions_for(device, list(cfg["precisions"]))
    for image_size in cfg["image_sizes"]:
        plans = [("fp32", False, False)]
        plans += [
            p
            for p in itertools.product(precisions, cfg["channels_last"], [False])
            if p != ("fp32", False, False)
        ]
        if cfg["compile"] and image_size in cfg["compile_image_sizes"]:
            plans += [(precision, True, True) for precision in precisions]
        for precision, channels_last, compile_model in plans:
            rows.append(
                _measure(net, device, cfg, loss_cfg, image_size, precision, channels_last, compile_model)
            )
    return rows


def _measure(
    net: DeepfakeDetector,
    device: torch.device,
    cfg: Mapping[str, Any],
    loss_cfg: Mapping[str, Any],
    image_size: int,
    precision: str,
    channels_last: bool,
    compile_model: bool,
) -> Row:
    baseline = precision == "fp32" and not channels_last and not compile_model
    backend = (
        "baseline:eager"
        if baseline
        else "+".join(
            ["compile" if compile_model else "eager"] + (["channels_last"] if channels_last else [])
        )
    )
    log.info("train step %s %s %dpx", backend, precision, image_size)
    batch_size = cfg["batch_size"]
    with PeakMemory(device) as memory:
        step = train_step_fn(
            net, device, image_size, batch_size, precision, channels_last, compile_model, loss_cfg
        )
        warmup = cfg["warmup"] + (1 if compile_model else 0)  # the first compiled call is the compilation
        timing = time_calls(step, batch_size, cfg["iters"], warmup, sync_for(device))
    return make_row(
        "train",
        "train_step",
        backend,
        timing,
        memory,
        device=device_label(device),
        precision=precision,
        batch_size=batch_size,
        image_size=image_size,
        workers=0,
        threads=torch.get_num_threads(),
    )
