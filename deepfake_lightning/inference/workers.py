"""`serve workers=N`: N uvicorn worker processes on one port, each with its own model, and one `/metrics` for all.

Why processes: one worker already scores on every core (`torch_replicas`, `onnx_sessions`), but parsing
uploads, JSON and the event loop hold Python's GIL; a second process lifts that ceiling on a machine with cores
to spare. The processes share the listening socket (uvicorn's supervisor binds it once, starts the workers with
`spawn` and restarts one that dies), so the kernel spreads connections over them. Limits that count
(`limit_concurrency`, `decode_pixels`, `upload_bytes_in_memory`, `video_concurrency`) hold per worker: N workers
take N times as much at once. Replicas on several machines stay the job of a balancer (deploy/).

Each worker rebuilds the app from the serve config the parent validated, passed in the environment variable
`DFL_SERVE_CONFIG` (JSON): the workers are fresh interpreters, and the environment, unlike a file, leaves no copy
of the API key behind (the key already travels there as `DEEPFAKE_API_KEY`). The parent opens the model once
before starting them, so a bad model stops `serve` with its one-line error instead of N workers failing over and
over.

Metrics: before the workers start, `PROMETHEUS_MULTIPROC_DIR` names a folder (the one the user set, emptied of
old `.db` files as prometheus-client requires; else a temporary one, removed at exit) where every worker writes
its values, and a scrape adds them up (`metrics.py`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepfake_lightning.inference.metrics import MULTIPROC_ENV
from deepfake_lightning.inference.settings import ServerSettings

log = logging.getLogger(__name__)

CONFIG_ENV = "DFL_SERVE_CONFIG"
FACTORY = "deepfake_lightning.serve:app_from_environment"  # beside build_app: no import back into serve
PROTOCOL = "deepfake_lightning.inference.connection_guard:GuardedH11Protocol"
LOG_FORMAT = "[%(asctime)s][%(process)d][%(name)s][%(levelname)s] - %(message)s"
# uvicorn's supervisor kills a worker that does not answer its ping within this; its default, 5 s, is shorter than
# a fresh worker's start on a busy machine (interpreter, uvicorn, then torch imported while the ping thread waits
# for the GIL): at a load of 16 on 2 cores, workers were killed and restarted for 10 minutes without ever serving
WORKER_HEALTHCHECK_S = 60


def empty_metrics_dir() -> Path | None:
    """The folder `PROMETHEUS_MULTIPROC_DIR` names, created, without the values of an earlier run (a scrape
    would add them up with this run's); None when it is not set. One worker with the variable set also writes
    there, so `serve` calls this whatever `workers` is."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        return None
    folder = Path(given)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return folder


@contextmanager
def multiprocess_metrics_dir() -> Iterator[Path]:
    """`PROMETHEUS_MULTIPROC_DIR` for the workers: the given folder without stale values, or a temporary one."""
    given = empty_metrics_dir()
    if given is not None:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="dfl_metrics_"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def run_workers(values: dict[str, Any], server: ServerSettings) -> None:
    """Start `server.workers` processes serving the app of `values` (the serve config, resolved) and wait."""
    import uvicorn

    options = server.uvicorn_options()
    # the supervisor pickles its config for each worker: the protocol goes by name, its deadline is set by
    # the worker (`serve.app_from_environment`) before the first connection
    options["http"] = PROTOCOL
    options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_S
    with multiprocess_metrics_dir() as folder:
        os.environ[CONFIG_ENV] = json.dumps(values)
        log.info("%d workers; metrics of all of them in %s", server.workers, folder)
        try:
            uvicorn.run(FACTORY, factory=True, workers=server.workers, **options)
        finally:
            os.environ.pop(CONFIG_ENV, None)
