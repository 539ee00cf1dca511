"""Run `python -m deepfake_lightning.serve` as a child process on a free loopback port (load tests, smoke tests).

The child is the real server (uvicorn, the app, the model) so its memory can be read from /proc and it can be
stopped like a deployment would stop it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _status_kib(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/PID/status, in bytes; None where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (Linux /proc); None where /proc is not available."""
    return _status_kib(pid, "VmRSS")


def peak_rss_bytes(pid: int, reset: bool = False) -> int | None:
    """The most resident memory a process has held (VmHWM); `reset=True` first restarts the count from its
    current RSS (`/proc/PID/clear_refs`, Linux >= 4.0, needs the right to write it), so a peak is measured
    over a window."""
    if reset:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            return None
    return _status_kib(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """`with ServerProcess(model) as server: httpx.get(server.url + "/health")`; stopped on exit."""

    def __init__(
        self,
        model: str | Path,
        overrides: Sequence[str] = (),
        startup_timeout_s: float = 600.0,  # a start-up on a loaded shared machine can take minutes
        env: dict[str, str] | None = None,
    ) -> None:
        self.model = str(model)
        self.overrides = list(overrides)
        self.startup_timeout_s = startup_timeout_s
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = tempfile.TemporaryDirectory(prefix="serve_")
        self.log_path = Path(self._workdir.name) / "server.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "deepfake_lightning.serve",
            f"ckpt_path={self.model}",
            "host=127.0.0.1",
            f"port={self.port}",
            "log_level=warning",
            f"paths.log_dir={self.log_dir}",
            *self.overrides,
        ]
        with self.log_path.open("wb") as log:  # a file, not a pipe: a chatty server can never block on it
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"server exited during start-up:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"server not healthy after {self.startup_timeout_s:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.3)

    @property
    def log_dir(self) -> Path:
        """Where the server's run folder (`.hydra/`, its log) is written."""
        return Path(self._workdir.name) / "logs"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int | None:
        return rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
        self._workdir.cleanup()
