"""`python -m deepfake_lightning.serve ckpt_path=MODEL [host=127.0.0.1] [port=8000]`: the HTTP service."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from omegaconf import DictConfig

from deepfake_lightning.inference.backends import TorchBackend
from deepfake_lightning.inference.detector import BaseDetector
from deepfake_lightning.inference.from_config import detector_from_config, validate_detector_config
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.utils.config_schema import plain, unknown_key
from deepfake_lightning.utils.config_validation import ConfigError
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

log = logging.getLogger(__name__)


DETECTOR_KEYS = (
    "ckpt_path",
    "ensemble",
    "backend",
    "device",
    "calibration",
    "threshold",
    "face_crop",
    "min_size",
    "onnx_sessions",
    "torch_replicas",
)
RUN_KEYS = ("task_name", "paths", "hydra", "host", "port", "log_level")


def settings_from_config(cfg: DictConfig) -> ServiceSettings:
    """The service's settings from the serve config; a key that is neither a setting of the service, of the
    detector nor of the run is refused with the nearest known name (as the data, model and trainer schemas do)."""
    values = plain(cfg)
    assert isinstance(values, dict)
    if values.get("api_key") == "":
        values["api_key"] = None
    fields = ServiceSettings.model_fields
    known = [*fields, *DETECTOR_KEYS, *RUN_KEYS]
    for key, value in values.items():
        if key not in known:
            raise ConfigError(unknown_key(str(key), value, known))
    return ServiceSettings.check({k: v for k, v in values.items() if k in fields and v is not None})


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


def serve(cfg: DictConfig) -> dict[str, Any]:
    import uvicorn

    validate_detector_config(cfg)
    if not isinstance(cfg.port, int) or not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port={cfg.port!r}: expected an integer in 0..65535")
    settings = settings_from_config(cfg)
    replicas = cfg.get("torch_replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ConfigError(f"torch_replicas={replicas!r}: expected an integer >= 0")
    if not _is_loopback(str(cfg.host)) and settings.api_key is None:
        log.warning("listening on %s without an API key: anyone who can reach it can use it", cfg.host)
    detector = detector_from_config(cfg)
    if settings.max_batch_size > 1:  # the serial service keeps one model on every core (single-image latency)
        torch_per_core(detector, replicas)
    app = create_app(detector, settings)
    log.info(
        "serving %s on http://%s:%s (docs at /docs)",
        detector.describe().get("source", "ensemble"),
        cfg.host,
        cfg.port,
    )
    uvicorn.run(app, host=str(cfg.host), port=int(cfg.port), log_level=str(cfg.log_level))
    return {"status": "ok"}


@hydra_main("serve")
def main(cfg: DictConfig) -> None:
    run_task(serve, cfg)


if __name__ == "__main__":
    main()
