"""Hydra callback: a secret given in the config (`serve api_key=...`, or a config file) never reaches the run
folder. Hydra writes the composed config, the command-line overrides and its own config (`.hydra/config.yaml`,
`overrides.yaml`, `hydra.yaml`) before the task starts, so the key would be kept in plain text in every run dir.

Before that, this callback moves each secret into its environment variable (where `conf/serve.yaml` reads it
from anyway: `${oc.env:DEEPFAKE_API_KEY,null}`) and puts that interpolation in its place, in the config and in
the overrides Hydra records. The task resolves the same value; the files hold the variable's name. A multirun
(`-m`) re-reads the command line for every job, out of reach of this callback, so a secret there is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

SECRETS = {"api_key": "DEEPFAKE_API_KEY"}  # config key -> environment variable


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class SecretsOutOfRunFiles(Callback):
    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self.secrets = dict(secrets or SECRETS)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        for key, variable in self.secrets.items():
            self._move(config, key, variable)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for override in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []:
            key = _override_key(str(override))
            if key in self.secrets:
                raise SystemExit(
                    f"Invalid config: {key} on the command line of a multirun would be written into every job's "
                    f"run files; set the environment variable {self.secrets[key]} instead"
                )

    def _move(self, config: DictConfig, key: str, variable: str) -> None:
        node = config._get_node(key) if key in config else None
        if node is None or node._is_interpolation() or node._is_none():
            return
        value = str(node._value())
        if not value:
            return
        os.environ[variable] = value
        reference = "${oc.env:" + variable + ",null}"
        with open_dict(config):
            config[key] = reference
            overrides = config.hydra.overrides.task
            for i, override in enumerate(overrides):
                if _override_key(str(override)) == key:
                    overrides[i] = f"{str(override).split('=', 1)[0]}={reference}"
            dirname = OmegaConf.select(config, "hydra.job.override_dirname")
            if isinstance(dirname, str) and value in dirname:
                config.hydra.job.override_dirname = dirname.replace(value, f"${variable}")
