"""A TorchScript export read back (`torch.jit.load`): export checks its own file against the checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """The traced module of a `.pt` written by export, on the CPU; errors are torch's own (a file just written)."""
    return torch.jit.load(str(path), map_location="cpu")
