"""Running `python -m deepfake_lightning.train` as a real subprocess with tiny synthetic settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, TINY_TRAINER


def tiny_synthetic(tmp_path: Path) -> list[str]:
    """`+experiment=fast` on 8+8 generated training images at 40 px, one batch per stage."""
    return [
        "+experiment=fast",
        *TINY_TRAINER,
        "data.n_train=8",
        "data.n_valid=4",
        "data.n_test=4",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "data.image_size=40",  # 32 px (a 1x1 final feature map) hits a very slow oneDNN path on some CPUs
    ]


def run_train(
    *args: str, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The command exactly as a user types it; stdout and stderr are returned together."""
    environment = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "deepfake_lightning.train", *args],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
