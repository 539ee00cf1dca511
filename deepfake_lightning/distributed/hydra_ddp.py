"""DDP whose child processes re-run exactly this Hydra job, in this job's output dir, in single-run mode.

Lightning's script launcher starts ranks 1..N-1 by re-running ``sys.argv`` plus ``hydra.run.dir=<run dir>``.
Inside a multirun that is wrong twice: the argv still holds ``-m`` and the sweep (each child would start the
whole sweep again) and ``hydra.run.dir`` is not where the job writes. Here a child gets the job's own overrides
(``hydra.overrides.task``: the sweep values already chosen), ``hydra.mode=RUN`` and the job's output dir, so
every job has one dir and one set of files whether it is a run, a multirun job or an Optuna trial.

In a multirun the jobs share one Python process, so when a job ends (``end_ddp_job``, called by the Hydra
callback ``DDPJobEndCallback``) its children are awaited, its process group closed and the launcher's
``MASTER_PORT``/``LOCAL_RANK``/... variables removed: otherwise the next job would reuse a group whose peers
have exited, and would take the leftover ``LOCAL_RANK`` as a sign that its ranks were started externally.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

# set in os.environ by Lightning's launcher when it starts the children
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_launched: list[_SubprocessScriptLauncher] = []
# command-line flags of a Hydra app that take a value and must reach the children unchanged
_VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _entry_command() -> list[str]:
    import __main__  # lazy: the running script, read when the job starts

    spec = getattr(__main__, "__spec__", None)
    if spec is None:
        return [sys.executable, sys.argv[0]]
    return [sys.executable, "-m", spec.name]


def _hydra_flags(argv: Sequence[str]) -> list[str]:
    """``--config-name x`` / ``-cn=x`` style flags from argv; overrides, ``-m`` and the rest are left out."""
    flags: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        name = arg.split("=", 1)[0]
        if name in _VALUE_FLAGS:
            flags.append(arg)
            if "=" not in arg and i + 1 < len(args):
                flags.append(args[i + 1])
    return flags


def hydra_job_command(local_rank: int) -> tuple[list[str], str]:
    """The command and cwd that re-run the current Hydra job as rank ``local_rank``."""
    hydra_cfg = HydraConfig.get()
    # the user's config dirs (hydra.searchpath=[...]) too: a +experiment from there must compose in the children
    hydra_overrides = hydra_cfg.overrides.get("hydra") or []
    searchpath = [o for o in hydra_overrides if o.split("=", 1)[0].lstrip("+~") == "hydra.searchpath"]
    command = _entry_command() + _hydra_flags(sys.argv[1:]) + searchpath + list(hydra_cfg.overrides.task)
    command += [
        "hydra.mode=RUN",
        f"hydra.run.dir={_quoted(str(hydra_cfg.runtime.output_dir))}",
        f"hydra.job.name=ddp_rank_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


class _HydraJobLauncher(_SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        self.saved_env = {key: os.environ.get(key) for key in LAUNCH_ENV}
        _launched.append(self)
        original = subprocess_script._hydra_subprocess_cmd
        subprocess_script._hydra_subprocess_cmd = hydra_job_command
        try:
            super()._call_children_scripts()
        finally:
            subprocess_script._hydra_subprocess_cmd = original


class HydraDDPStrategy(DDPStrategy):
    """``strategy: ddp`` for Hydra apps: one output dir per job in runs, multiruns and sweeps alike."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("start_method", "popen")
        super().__init__(**kwargs)

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, _SubprocessScriptLauncher):
            self._launcher = _HydraJobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def end_ddp_job(timeout_s: float = 300.0) -> None:
    """Undo what launching this job's ranks left in the process; a no-op when we launched none."""
    if not _launched:
        return
    while _launched:
        launcher = _launched.pop()
        for proc in launcher.procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        for key, value in launcher.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
