"""``extras``: what every Hydra job does before its task, as in lightning-hydra-template (``conf/extras``).

- ``extras.print_config`` (on by default): the resolved config as a rich tree on rank 0, one branch per
  top-level key, so the values a run really used are on screen before it starts (they are also saved as
  ``config.yaml`` in the run dir by ``train``).
- ``extras.ignore_warnings``: silence Python warnings (off by default).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich import print as rich_print
from rich.syntax import Syntax
from rich.tree import Tree

from deepfake_lightning.distributed.ranks import is_rank_zero

log = logging.getLogger(__name__)

# printed first, in this order; the other top-level keys follow in config order
FIRST = ("data", "model", "callbacks", "logger", "trainer", "paths", "extras")


def apply_extras(cfg: DictConfig) -> None:
    """Run the ``extras`` switches of ``cfg``; a config without an ``extras`` node does nothing."""
    extras = cfg.get("extras")
    if not extras:
        return
    if extras.get("ignore_warnings"):
        log.info("extras.ignore_warnings=true: Python warnings are silenced")
        warnings.filterwarnings("ignore")
    if extras.get("print_config") and is_rank_zero():
        print_config_tree(cfg)


def _branch_text(cfg: DictConfig, key: str) -> str:
    """YAML of ``cfg[key]``, resolved when it can be; a ``???`` or broken value is shown as written, for the
    config validation that follows to report."""
    try:
        value = cfg[key]
        if OmegaConf.is_config(value):
            return OmegaConf.to_yaml(value, resolve=True)
        return str(value)
    except OmegaConfBaseException:
        value = OmegaConf.to_container(cfg, resolve=False)[key]
        return OmegaConf.to_yaml(value) if isinstance(value, dict | list) else str(value)


def print_config_tree(cfg: DictConfig, first: Sequence[str] = FIRST) -> None:
    """Print ``cfg`` as a rich tree: one branch per top-level key, its YAML inside."""
    tree = Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in first if k in cfg] + [str(k) for k in cfg if k not in first]
    for key in keys:
        branch = tree.add(key, style="dim", guide_style="dim")
        branch.add(Syntax(_branch_text(cfg, key), "yaml"))
    rich_print(tree)
