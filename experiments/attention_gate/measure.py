"""What does the attention gate do? Statistics of a trained checkpoint's gate, or of gates trained on cached features.

    # 1. a trained checkpoint, on the validation split of its own run (splits.csv beside the checkpoint dir)
    python experiments/attention_gate/measure.py checkpoint RUN_DIR [--n 180]
    # 2. attention + head trained on cached features of the frozen ImageNet MobileNetV2, per attention kind
    python experiments/attention_gate/measure.py cached RUN_DIR [--kinds off,channel_gate,spatial,softmax]

RUN_DIR is a training run directory (it has splits.csv; `checkpoint` also needs checkpoints/best.ckpt). Only
the train and valid splits are read: test stays unread. Results print as JSON lines and go to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from deepfake_lightning.bundle import open_model
from deepfake_lightning.data.dataset import ImageDataset
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.models import build_detector
from deepfake_lightning.models.attention import SpatialAttention
from deepfake_lightning.modules.losses import BinaryLoss


def split_samples(run_dir: Path, split: str, limit: int | None = None) -> list[tuple[str, int]]:
    """(path, label) of one split of the run's manifest, classes interleaved so a prefix stays balanced."""
    with (run_dir / "splits.csv").open() as handle:
        rows = [(r["path"], int(r["label"])) for r in csv.DictReader(handle) if r["split"] == split]
    by_class = [[r for r in rows if r[1] == c] for c in (0, 1)]
    mixed = [r for pair in zip(*by_class, strict=False) for r in pair]
    return mixed[:limit] if limit else mixed


@torch.no_grad()
def backbone_features(
    net: nn.Module, samples: list, preprocessing: dict[str, Any], batch: int = 32
) -> torch.Tensor:
    dataset = ImageDataset(samples, build_eval_transform(**preprocessing), on_bad_image="raise")
    net.eval()
    chunks = []
    for start in range(0, len(dataset), batch):
        images = torch.stack([dataset[i]["image"] for i in range(start, min(start + batch, len(dataset)))])
        chunks.append(net.backbone(images))
    return torch.cat(chunks)


def applied_gate(attention: SpatialAttention, features: torch.Tensor) -> torch.Tensor:
    """The multiplier the attention applies to the features (B x C|1 x h x w)."""
    logits = attention.gate[:-1](features)
    if attention.kind == "softmax":
        weights = torch.softmax(logits.flatten(2), dim=-1).view_as(logits)
        return weights * (logits.shape[-1] * logits.shape[-2])
    return torch.sigmoid(logits)


@torch.no_grad()
def gate_report(net: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Gate statistics and what happens to the scores when the gate's spatial variation is removed."""
    net.eval()
    attention = net.attention
    feats = {"feature_mean": features.mean().item(), "feature_std": features.std().item()}
    if attention.gate is None:
        logits = net.head(net.pool(features).flatten(1))
        return {**feats, "auroc": binary_auroc(logits, labels).item()}
    pre = attention.gate[:-1](features)  # pre-sigmoid (or pre-softmax) score
    gate = applied_gate(attention, features)
    attention(features)
    shown = attention.last_map.flatten(1)  # what explanations draw
    spatial_mean = gate.mean(dim=(2, 3), keepdim=True)
    relative_spread = (
        (gate.amax(dim=(2, 3)) - gate.amin(dim=(2, 3))) / spatial_mean.flatten(2).squeeze(-1)
    ).flatten()

    def score(multiplier: torch.Tensor) -> torch.Tensor:
        return net.head(net.pool(features * multiplier).flatten(1))

    full = score(gate)
    flat = score(spatial_mean.expand_as(gate))  # same per-channel level, no choice of location
    fixed = score(gate.mean(dim=(0, 2, 3), keepdim=True).expand_as(gate))  # one fixed rescale per channel
    return {
        **feats,
        "pre_gate_mean": pre.mean().item(),
        "pre_gate_std": pre.std().item(),
        "pre_gate_std_between_channels": pre.mean(dim=(0, 2, 3)).std().item() if pre.shape[1] > 1 else 0.0,
        "pre_gate_std_within_map": pre.std(dim=(2, 3)).mean().item(),
        "gate_mean": gate.mean().item(),
        "gate_q01_q99": [gate.quantile(0.01).item(), gate.quantile(0.99).item()]
        if gate.numel() < 16_000_000
        else None,
        "shown_map_mean": shown.mean().item(),
        "shown_map_range_median": (shown.amax(1) - shown.amin(1)).median().item(),
        "shown_map_range_max": (shown.amax(1) - shown.amin(1)).max().item(),
        "gate_relative_spatial_spread_median": relative_spread.median().item(),
        "auroc": binary_auroc(full, labels).item(),
        "auroc_gate_spatially_flat": binary_auroc(flat, labels).item(),
        "auroc_gate_fixed_per_channel": binary_auroc(fixed, labels).item(),
        "mean_abs_logit_change_flat": (flat - full).abs().mean().item(),
        "mean_abs_logit_change_fixed": (fixed - full).abs().mean().item(),
        "logit_std": full.std().item(),
    }


def fit_on_features(
    net: nn.Module, features: torch.Tensor, targets: torch.Tensor, epochs: int, seed: int, lr: float = 1e-3
) -> None:
    """AdamW on attention + head over cached backbone features, focal loss as in advanced_v2."""
    torch.manual_seed(seed)
    params = [*net.attention.parameters(), *net.head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    loss_fn = BinaryLoss("focal", alpha=0.5, gamma=2.0)
    generator = torch.Generator().manual_seed(seed)
    net.attention.train()
    net.head.train()
    for _ in range(epochs):
        for pick in torch.randperm(len(features), generator=generator).split(32):
            if len(pick) < 2:
                continue
            optimizer.zero_grad(set_to_none=True)
            logits = net.head(net.pool(net.attention(features[pick])).flatten(1))
            loss_fn(logits, targets[pick]).backward()
            optimizer.step()
    net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("checkpoint", "cached"))
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=None, help="images per split (default: all)")
    parser.add_argument("--kinds", default="off,channel_gate,spatial,softmax")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--image-size", type=int, default=None, help="cached mode: input size (default: the run's)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="cached mode: save/reuse the features here")
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest for these small tensors")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    results: list[dict[str, Any]] = []
    ckpt = args.run_dir / "checkpoints" / "best.ckpt"
    if args.mode == "checkpoint":
        module = open_model(ckpt, calibration=None).module
        samples = split_samples(args.run_dir, "valid", args.n)
        features = backbone_features(module.net, samples, dict(module.hparams["preprocessing"]))
        labels = torch.tensor([y for _, y in samples])
        results.append({"what": f"trained {ckpt}", **gate_report(module.net, features, labels)})
        fresh = SpatialAttention(module.net.backbone.out_channels, **module.hparams["attention"])
        module.net.attention = fresh  # the same trained model, the gate as initialised
        results.append(
            {
                "what": "same backbone and head, attention at its initialisation",
                **gate_report(module.net, features, labels),
            }
        )
    else:
        preprocessing = dict(open_model(ckpt, calibration=None).preprocessing) if ckpt.is_file() else {}
        if args.image_size:
            preprocessing["image_size"] = args.image_size
        backbone = {"weights": "IMAGENET1K_V1", "freeze_first_n": 156}
        base = build_detector(
            backbone, {"enabled": False}, {"hidden": [512, 256], "dropout": [0.5, 0.35, 0.25]}
        )
        if args.cache and args.cache.is_file():
            data = torch.load(args.cache, weights_only=True)
        else:
            data = {}
            for split in ("train", "valid"):
                samples = split_samples(args.run_dir, split, args.n)
                labels = torch.tensor([float(y) for _, y in samples])
                data[split] = (backbone_features(base, samples, preprocessing), labels)
            if args.cache:
                torch.save(data, args.cache)
        print(
            json.dumps(
                {
                    "cached": {k: list(v[0].shape) for k, v in data.items()},
                    "seconds": round(time.time() - started),
                }
            ),
            flush=True,
        )
        for kind in args.kinds.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                torch.manual_seed(seed)
                attention = {
                    "enabled": kind != "off",
                    "hidden": 256,
                    "kind": "channel_gate" if kind == "off" else kind,
                }
                net = build_detector(
                    {"weights": None}, attention, {"hidden": [512, 256], "dropout": [0.5, 0.35, 0.25]}
                )
                net.backbone = base.backbone
                fit_on_features(net, *data["train"], epochs=args.epochs, seed=seed)
                row = {
                    "what": f"cached ImageNet features, attention {kind}, seed {seed}",
                    **gate_report(net, data["valid"][0], data["valid"][1].long()),
                }
                results.append(row)
                print(json.dumps(row), flush=True)
    for row in results if args.mode == "checkpoint" else []:
        print(json.dumps(row), flush=True)
    print(json.dumps({"seconds": round(time.time() - started)}), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
