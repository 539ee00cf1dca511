"""Hydra callback: an output folder that cannot be created stops the command with one line, before Hydra's
own `mkdir` fails with a traceback (e.g. `paths.log_dir` under a file or on a read-only mount)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def creatable(folder: Path) -> str | None:
    """None when `folder` exists writable or could be made; else why not. Creates nothing."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink() or probe.parent == probe:
            return "a dangling link in its path"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


class RunDirCheck(Callback):
    """Checks `hydra.run.dir` (or `hydra.sweep.dir`) before Hydra creates it."""

    def _check(self, config: DictConfig, key: str) -> None:
        folder = OmegaConf.select(config, key)
        reason = creatable(Path(str(folder))) if folder else None
        if reason is not None:
            raise SystemExit(
                f"Invalid config: {key}={str(folder)!r}: cannot create it ({reason}); set paths.log_dir "
                "to a writable folder"
            )

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")
