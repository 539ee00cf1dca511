"""The one reading of a `device=` setting (auto | cpu | cuda | cuda:N): eval, robustness, bench, predict."""

from __future__ import annotations

import torch


def resolve_device(name: str | None = "auto", check_available: bool = True) -> torch.device:
    """``auto`` (or None) -> the first CUDA device if there is one, else the CPU; others as torch reads them.

    A name torch cannot read, or (with ``check_available``) a CUDA device this machine does not have, raises a
    ValueError that names the setting and the fix, before any model or data is loaded. ONNX Runtime passes
    ``check_available=False``: its CUDA provider is checked on its own, without torch's CUDA build.
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={name!r} is not a device ({err}); use auto, cpu, cuda or cuda:N") from None
    if check_available and device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name} but no CUDA device is visible; use device=auto or device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={name} but only {torch.cuda.device_count()} CUDA device(s) are visible (cuda:0..)"
            )
    return device
