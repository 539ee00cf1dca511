"""Where the time goes: torch.profiler over a few inference batches and training steps, top operators by self time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile


def profile_calls(
    fn: Callable[[], Any], steps: int, device: torch.device, top: int, out: Path
) -> list[dict[str, Any]]:
    """Run `fn` once untimed, then `steps` times under the profiler; write the table, return the top rows."""
    fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort_key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    out.write_text(averages.table(sort_by=sort_key, row_limit=top * 2))
    total = sum(getattr(e, sort_key) for e in averages) or 1
    ranked = sorted(averages, key=lambda e: getattr(e, sort_key), reverse=True)[:top]
    return [
        {
            "op": e.key,
            "self_ms_per_step": round(getattr(e, sort_key) / 1e3 / steps, 3),
            "share": round(getattr(e, sort_key) / total, 4),
            "calls_per_step": e.count // steps,
        }
        for e in ranked
    ]


def profile_model(
    inference_fn: Callable[[], Any],
    train_fn: Callable[[], Any],
    device: torch.device,
    cfg: Mapping[str, Any],
    out_dir: Path,
) -> dict[str, list[dict[str, Any]]]:
    """Top operators of eager inference and of one training step (tables in profile_*.txt beside bench.json)."""
    return {
        "inference": profile_calls(
            inference_fn, cfg["steps"], device, cfg["top"], out_dir / "profile_inference.txt"
        ),
        "train": profile_calls(train_fn, cfg["steps"], device, cfg["top"], out_dir / "profile_train.txt"),
    }
