"""`python -m deepfake_lightning.serve ckpt_path=MODEL [host=127.0.0.1] [port=8000] [workers=1]`: the HTTP service."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from typing import Any

from fastapi import FastAPI
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.inference.backends import TorchBackend
from deepfake_lightning.inference.connection_guard import GuardedH11Protocol
from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.from_config import detector_from_config
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServerSettings, ServiceSettings
from deepfake_lightning.inference.workers import CONFIG_ENV, LOG_FORMAT, empty_metrics_dir, run_workers
from deepfake_lightning.utils.config_schema import Settings, plain, unknown_key
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.entry_schema import ServeModelSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


DETECTOR_KEYS = tuple(ServeModelSettings.model_fields)  # utils/entry_schema.py
RUN_KEYS = ("task_name", "paths", "hydra")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _values(cfg: DictConfig) -> dict[str, Any]:
    """The serve config as plain values; a key that is no setting of the service, the server, the detector or
    the run is refused with the nearest known name (as the data, model and trainer schemas do)."""
    values = plain(cfg)
    assert isinstance(values, dict)
    if values.get("api_key") == "":
        values["api_key"] = None
    known = [*ServiceSettings.model_fields, *ServerSettings.model_fields, *DETECTOR_KEYS, *RUN_KEYS]
    for key, value in values.items():
        if key not in known:
            raise ConfigError(unknown_key(str(key), value, known))
    return values


def _pick(schema: type[Settings], values: dict[str, Any]) -> Any:
    return schema.check({k: v for k, v in values.items() if k in schema.model_fields and v is not None})


def settings_from_config(cfg: DictConfig) -> ServiceSettings:
    """What the app enforces. Bound to a loopback address with no `allowed_hosts`, only loopback names are
    accepted in the Host header: a web page elsewhere cannot reach the server by DNS rebinding."""
    values = _values(cfg)
    settings: ServiceSettings = _pick(ServiceSettings, values)
    if not settings.allowed_hosts and _is_loopback(str(values.get("host", "127.0.0.1"))):
        settings = settings.model_copy(update={"allowed_hosts": LOOPBACK_NAMES})
    return settings


def server_settings_from_config(cfg: DictConfig) -> ServerSettings:
    """What the process enforces on connections (uvicorn's limits and the connection guard)."""
    return _pick(ServerSettings, _values(cfg))


def torch_per_core(detector: BaseDetector, replicas: Any) -> int:
    """`torch_replicas`: each PyTorch model of `detector` scores a batch as slices, one thread each (0 = one
    per core, 1 = one model on every core). Returns how many models it changed."""
    changed = 0
    for member in getattr(detector, "members", [detector]):
        backend = getattr(member, "backend", None)
        if isinstance(backend, TorchBackend):
            backend.per_core(replicas)
            changed += 1
    return changed


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _room_for_connections(limit_concurrency: int) -> None:
    """The connection guard keeps sockets under 3 x limit_concurrency; raise the soft file limit to fit them (and
    the model's own files) when the hard limit allows, else say what will happen."""
    try:
        import resource  # lazy: POSIX only: Windows has no resource module
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 3 * limit_concurrency + 256
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < needed:
        log.warning(
            "open-file limit %d < %d (3 x limit_concurrency + 256): a flood of connections may exhaust it; "
            "lower limit_concurrency or raise the limit (ulimit -n)",
            new,
            needed,
        )


def serve(cfg: DictConfig) -> dict[str, Any]:
    import uvicorn  # lazy: optional extra [serve]

    server = server_settings_from_config(cfg)
    settings = settings_from_config(cfg)
    _torch_replicas(cfg)
    if not _is_loopback(server.host) and settings.api_key is None:
        log.warning("listening on %s without an API key: anyone who can reach it can use it", server.host)
    _room_for_connections(server.limit_concurrency)
    if server.workers > 1:  # each worker builds its own app; the model is opened here once, to fail early
        describe = detector_from_config(cfg).describe()
        log.info("serving %s on http://%s:%s", describe.get("source", "ensemble"), server.host, server.port)
        run_workers({k: v for k, v in _values(cfg).items() if k not in RUN_KEYS}, server)
        return {"status": "ok"}
    empty_metrics_dir()  # PROMETHEUS_MULTIPROC_DIR set for one worker: this run's values only
    app = build_app(cfg)
    log.info("serving %s on http://%s:%s", app.state.source, server.host, server.port)
    uvicorn.run(app, **server.uvicorn_options())
    return {"status": "ok"}


def build_app(cfg: DictConfig) -> FastAPI:
    """The detector of `cfg` behind the app: what one worker serves."""
    settings = settings_from_config(cfg)
    detector = detector_from_config(cfg)
    if settings.max_batch_size > 1:  # the serial service keeps one model on every core (single-image latency)
        torch_per_core(detector, _torch_replicas(cfg))
    app = create_app(detector, settings)
    app.state.source = detector.describe().get("source", "ensemble")
    return app


def _torch_replicas(cfg: DictConfig) -> int:
    """serve's model keys through the schema (`utils/entry_schema.py`); returns `torch_replicas`."""
    return ServeModelSettings.check({k: cfg[k] for k in DETECTOR_KEYS if k in cfg}).torch_replicas


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each worker: the app `serve` would build, from `DFL_SERVE_CONFIG`."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)  # a fresh interpreter: Hydra's format
    cfg = OmegaConf.create(json.loads(os.environ[CONFIG_ENV]))
    GuardedH11Protocol.header_timeout_s = server_settings_from_config(cfg).header_timeout_s
    return build_app(cfg)


@hydra_main("serve")
def main(cfg: DictConfig) -> None:
    run_task(serve, cfg)


if __name__ == "__main__":
    main()
