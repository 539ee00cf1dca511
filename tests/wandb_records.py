"""Reading an offline W&B run back from its ``run-<id>.wandb`` file (the SDK no longer ships a reader).

The file is W&B's record log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of records, each
with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) around a protobuf ``Record``.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7


def records(path: Path) -> Iterator[Any]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, buffer = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pos += HEADER
        chunk, pos = data[pos : pos + length], pos + length
        if kind == 0:
            continue
        buffer = chunk if kind in (1, 2) else buffer + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buffer)
            yield record


def _key(item: Any) -> str:
    return "/".join(item.nested_key) or item.key


def read_offline_run(run_dir: Path, wait_s: float = 60.0) -> dict[str, Any]:
    """``run`` (group, job_type, name, tags), ``config``, ``history`` (one dict per log call), ``artifacts``.

    ``wandb.finish()`` can return before the W&B service has written the last records, so the file is read
    again until it holds the run's exit record (or ``wait_s`` has passed).
    """
    deadline = time.monotonic() + wait_s
    out = _read(run_dir)
    while not out["finished"] and time.monotonic() < deadline:
        time.sleep(0.5)
        out = _read(run_dir)
    return out


def _read(run_dir: Path) -> dict[str, Any]:
    (wandb_file,) = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {"run": {}, "config": {}, "history": [], "artifacts": [], "finished": False}
    for record in records(wandb_file):
        kind = record.WhichOneof("record_type")
        if kind == "exit":
            out["finished"] = True
        elif kind == "run":
            run = record.run
            out["run"] = {"group": run.run_group, "job_type": run.job_type, "name": run.display_name}
            out["run"]["tags"] = list(run.tags)
        elif kind == "config":
            for item in record.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "artifact":
            files = [entry.path for entry in record.artifact.manifest.contents]
            out["artifacts"].append(
                {"name": record.artifact.name, "type": record.artifact.type, "files": files}
            )
    return out
