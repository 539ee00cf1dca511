"""The one ``@hydra.main`` of every entry point, with the config dir that works installed or from a checkout.

The configs live in the repository's top-level ``conf/`` and ship inside the wheel as ``deepfake_lightning/conf``
(``pyproject.toml``: ``package-dir`` maps one onto the other). A relative ``config_path="../conf"`` only works
from a source checkout or an editable install, so the directory is computed once here: the packaged copy when it
exists (``pip install .``), else the checkout's ``conf/`` (``pip install -e .``, or the source tree on
``sys.path``). Hydra takes an absolute ``config_path`` as is. Users add their own configs on top with
``hydra.searchpath=[file:///my/configs]`` or ``--config-dir /my/configs`` (README, "Your own experiments").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra

_PACKAGE = Path(__file__).resolve().parents[1]
PACKAGED_CONF = _PACKAGE / "conf"  # site-packages/deepfake_lightning/conf in a wheel install
SOURCE_CONF = _PACKAGE.parent / "conf"  # the checkout's top-level conf/


def config_dir() -> Path:
    """The directory holding ``train.yaml`` and the config groups."""
    for candidate in (PACKAGED_CONF, SOURCE_CONF):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"deepfake_lightning's configs are missing: expected train.yaml in {PACKAGED_CONF} (installed) or "
        f"{SOURCE_CONF} (source checkout); reinstall the package"
    )


def hydra_main(config_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@hydra_main("train")`` = ``@hydra.main(version_base="1.3", config_path=<config_dir()>, ...)``."""
    return hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
