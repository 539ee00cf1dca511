"""Which process writes files, and how the test predictions of every rank reach rank 0."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only


def is_rank_zero() -> bool:
    """True in a single-process run and on global rank 0 (rank read from LOCAL_RANK/RANK/SLURM_PROCID)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_test_outputs(module: Any) -> None:
    """Replace ``module.test_outputs`` on every rank by the predictions of all ranks, each image once.

    Under DDP each rank tests a ``DistributedSampler`` shard (rank r gets items r, r+W, r+2W, ...) padded with
    repeats of the first items so that shards are equal. Interleaving the shards restores the dataset order and
    dropping repeated paths removes the padding, so the files written on rank 0 match a single-device test.
    A no-op without an initialised process group; must be called on every rank (it is a collective).
    """
    world = _world_size()
    outputs = getattr(module, "test_outputs", None) or {}
    if world == 1 or "path" not in outputs:
        return
    local = {
        "path": list(outputs["path"]),
        "target": torch.cat(outputs["target"]).tolist() if outputs["target"] else [],
        "logit": torch.cat(outputs["logit"]).tolist() if outputs["logit"] else [],
    }
    shards: list[Any] = [None] * world
    dist.all_gather_object(shards, local)
    merged = merge_shards(shards)
    module.test_outputs = {
        "path": merged["path"],
        "target": [torch.tensor(merged["target"], dtype=torch.long)],
        "logit": [torch.tensor(merged["logit"], dtype=torch.float32)],
    }


def merge_shards(shards: list[dict[str, list]]) -> dict[str, list]:
    """Interleave per-rank ``{"path", "target", "logit"}`` lists, keeping each path once (drops padding)."""
    seen: set[str] = set()
    merged: dict[str, list] = {"path": [], "target": [], "logit": []}
    longest = max((len(shard["path"]) for shard in shards), default=0)
    for i in range(longest):
        for shard in shards:
            if i < len(shard["path"]) and shard["path"][i] not in seen:
                seen.add(shard["path"][i])
                for key in merged:
                    merged[key].append(shard[key][i])
    return merged
