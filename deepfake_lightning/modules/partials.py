"""Optimizer and scheduler settings in either form Lightning-Hydra users write them.

`model.optimizer` (and `model.scheduler`) is a config dict with ``_target_`` and ``_partial_: true``; a
recursive `hydra.utils.instantiate(cfg.model)`, as lightning-hydra-template's `train.py` does it, turns that dict
into a `functools.partial` before `DetectorModule` sees it. The module turns a partial back into the dict (the
target's import path and its keyword arguments), so its hyperparameters, and every checkpoint, hold only plain
values and load with ``weights_only=True`` and no arguments, whichever form it was built from.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from hydra.utils import get_object

from deepfake_lightning.utils.config_schema import ConfigError, plain


def import_path(target: Any) -> str:
    """`torch.optim.AdamW` -> "torch.optim.adamw.AdamW": where the class or function is defined."""
    return f"{target.__module__}.{target.__qualname__}"


def partial_config(value: Any, key: str) -> dict[str, Any] | None:
    """A config dict (or None) as it is; a `functools.partial` as the ``_partial_`` dict it was made from."""
    if value is None or isinstance(value, Mapping):
        return value
    if not isinstance(value, functools.partial):
        raise ConfigError(
            f"{key}={value!r}: expected a config with _target_ and _partial_: true, or the functools.partial "
            "hydra.utils.instantiate makes of it"
        )
    if value.args:
        raise ConfigError(
            f"{key}={value!r}: a partial with positional arguments cannot be stored in a checkpoint; give its "
            "arguments by name"
        )
    target = import_path(value.func)
    try:
        found = get_object(target)
    except Exception:  # a function defined inside another, a lambda...
        found = None
    if found is not value.func:
        raise ConfigError(
            f"{key}={value!r}: {target} cannot be imported by that name; use a module-level one"
        )
    return {"_target_": target, "_partial_": True, **plain(dict(value.keywords))}
