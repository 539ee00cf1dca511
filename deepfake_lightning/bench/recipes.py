"""Recipe rows (`tasks=[recipes]`): what a training step costs per encoder recipe (docs/recipes.md).

Stage `train_step`: the baseline is full fine-tuning (`tune=all`: forward, backward and an AdamW step through every
block) on random images; against it `tune=ln` (every block still runs forward and backward, only the LayerNorms
update), `tune=last_k` from cached tokens (only the last k blocks run) and `tune=frozen` from cached pooled vectors
(the head alone), each with the recipe's linear head. Stage `cache_build`: what the feature cache computes once per
image, the frozen part up to the cut in inference mode, against a full forward of the network. A recipe the
backbone refuses (`ln` on a BatchNorm CNN) is left out and named in the log.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch

from deepfake_lightning.bench.models import prepared
from deepfake_lightning.bench.rows import PeakMemory, Row, device_label, make_row, sync_for, time_calls
from deepfake_lightning.models import DeepfakeDetector, build_detector
from deepfake_lightning.models.cached_forward import (
    CachePoint,
    cache_point,
    frozen_forward,
    trainable_forward,
)
from deepfake_lightning.models.tuning import apply_tuning
from deepfake_lightning.modules.losses import BinaryLoss
from deepfake_lightning.utils.config_schema import ConfigError

log = logging.getLogger(__name__)


def _recipe_nets(backbone: Mapping[str, Any], last_k: int) -> dict[str, DeepfakeDetector]:
    """One network per recipe, all with the same weights and the recipes' linear head without attention."""
    config = {**backbone, "freeze_first_n": 0, "tune": "all", "tune_last_k": None}
    base = build_detector(config, {"enabled": False}, {"hidden": [], "dropout": [0.0]})
    nets = {"baseline:tune=all": base}
    for name, tune, k in (("tune=ln", "ln", None), (f"tune=last_k k={last_k}, cached", "last_k", last_k)):
        net = copy.deepcopy(base)
        try:
            apply_tuning(net.backbone, tune, k)
        except ConfigError as err:
            log.warning("bench recipes: %s left out (%s)", name, err)
            continue
        nets[name] = net
    frozen = copy.deepcopy(base)
    apply_tuning(frozen.backbone, "frozen")
    nets["tune=frozen, cached"] = frozen
    return nets


def _train_step(net: DeepfakeDetector, inputs: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """One AdamW step of the recipe's trainable part; `inputs` are images, or its cached values."""
    model = prepared(net, device, channels_last=False, train=True)
    point = cache_point(model) if model.backbone.tune in ("frozen", "last_k") else None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = BinaryLoss(name="bce")
    if point is not None:
        with torch.no_grad():  # the cache's values: computed once, not part of the timed step
            inputs = frozen_forward(model.eval(), point, inputs).clone()
        model.train()
    targets = (torch.arange(len(inputs)) % 2).float().to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs) if point is None else trainable_forward(model, point, inputs)
        loss_fn(logits, targets).backward()
        optimizer.step()

    return step


def _cache_build(net: DeepfakeDetector, point: CachePoint | None, images: torch.Tensor) -> Callable[[], None]:
    model = prepared(net, images.device, channels_last=False)

    @torch.inference_mode()
    def forward() -> None:
        model(images) if point is None else frozen_forward(model, point, images)

    return forward


def bench_recipes(model_cfg: Mapping[str, Any], device: torch.device, cfg: Mapping[str, Any]) -> list[Row]:
    nets = _recipe_nets(model_cfg["backbone"], int(cfg["tune_last_k"]))
    batch_size, rows = int(cfg["batch_size"]), []
    for image_size in cfg["image_sizes"]:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device)
        images = images.contiguous(memory_format=torch.channels_last)
        for backend, net in nets.items():
            log.info("recipes train step %s %dpx", backend, image_size)
            rows.append(
                _row("train_step", backend, net, _train_step(net, images, device), cfg, image_size, device)
            )
        builds = {"baseline:full forward": (nets["baseline:tune=all"], None)}
        for backend, net in nets.items():
            point = cache_point(net)
            if point is not None:
                builds[f"to the cut of {backend.removesuffix(', cached')} ({point.kind})"] = (net, point)
        for backend, (net, point) in builds.items():
            log.info("recipes cache build %s %dpx", backend, image_size)
            rows.append(
                _row("cache_build", backend, net, _cache_build(net, point, images), cfg, image_size, device)
            )
    return rows


def _row(
    stage: str,
    backend: str,
    net: DeepfakeDetector,
    fn: Callable[[], None],
    cfg: Mapping[str, Any],
    image_size: int,
    device: torch.device,
) -> Row:
    batch_size = int(cfg["batch_size"])
    with PeakMemory(device) as memory:
        timing = time_calls(fn, batch_size, int(cfg["iters"]), int(cfg["warmup"]), sync_for(device))
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return make_row(
        "recipes",
        stage,
        backend,
        timing,
        memory,
        device=device_label(device),
        precision="fp32",
        batch_size=batch_size,
        image_size=image_size,
        workers=0,
        threads=torch.get_num_threads(),
        extra={"trainable_parameters": trainable} if stage == "train_step" else {},
    )
