"""Real engines for the `cluster` tests: a one-node SLURM cluster and a throwaway PostgreSQL server.

Both are started here, once per test session, and stopped at its end (no daemon left, also when a test fails).
SLURM is started by `deploy/slurm/start-local-cluster.sh`, the script users read, so there is one home for its
config. PostgreSQL is a fresh `initdb` cluster in a temp dir on a free port, listening on 127.0.0.1 only, with a
login role that needs a password over TCP. As root, the server runs as the unprivileged `postgres` user (it
refuses to run as root).

`.ci/run` installs the engines (slurm-wlm, munge, postgresql), so a missing one FAILS the test. Set
`DFL_CLUSTER_ENGINES=absent` on a machine without them to skip instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SLURM_SCRIPTS = REPO_ROOT / "deploy" / "slurm"
ABSENT_ENV = "DFL_CLUSTER_ENGINES"
SLURM_TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "sbatch", "srun", "scancel", "scontrol")


def require(what: str, missing: list[str], packages: str = "slurm-wlm munge postgresql") -> None:
    """Fail (or skip, when DFL_CLUSTER_ENGINES=absent) naming the missing programs and the install line."""
    if not missing:
        return
    message = f"{what}: {', '.join(missing)} not found (apt-get install {packages}; .ci/run does)"
    if os.environ.get(ABSENT_ENV) == "absent":
        pytest.skip(message)
    pytest.fail(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@dataclass
class SlurmCluster:
    dir: Path
    conf: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def job_state(self, job_id: str, finished_within: float = 0) -> dict[str, str]:
        """`scontrol show job` as a dict (there is no accounting database: finished jobs stay 10 minutes).
        ``finished_within``: wait up to that many seconds for the job to leave RUNNING/COMPLETING (submitit's
        result file is written just before the job step ends)."""
        deadline = time.monotonic() + finished_within
        while True:
            out = self.run("scontrol", "show", "job", "--oneliner", job_id).stdout
            state = dict(field.split("=", 1) for field in out.split() if "=" in field)
            if state.get("JobState") not in ("RUNNING", "COMPLETING") or time.monotonic() > deadline:
                return state
            time.sleep(0.5)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    search = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # the daemons live in sbin
    require("SLURM", [tool for tool in SLURM_TOOLS if shutil.which(tool, path=search) is None])
    base = Path(tempfile.mkdtemp(prefix="dfl-slurm-"))  # short: the munge socket path must fit 108 bytes
    start = subprocess.run(
        [str(SLURM_SCRIPTS / "start-local-cluster.sh"), str(base)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if start.returncode != 0:  # the script has stopped whatever it had started
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"the local SLURM cluster did not start:\n{start.stdout}\n{start.stderr}")
    pids = {p.stem: int(p.read_text()) for p in (base / "run").glob("*.pid")}
    try:
        yield SlurmCluster(base, base / "slurm.conf")
    finally:
        subprocess.run([str(SLURM_SCRIPTS / "stop-local-cluster.sh"), str(base)], timeout=120)
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"daemons still running after stop-local-cluster.sh: {left}"


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str
    socket_dir: str  # the server's unix socket: the superuser's door (trust), for creating databases

    def url(self, password: str | None = None, database: str | None = None) -> str:
        """postgresql://user[:password]@127.0.0.1:port/db (no password unless given)."""
        secret = f":{password}" if password else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{database or self.database}"

    def create_database(self, name: str, role_password: str | None = None) -> str:
        """A new database owned by the login role (created first when ``role_password`` is given), made as the
        server's superuser through its unix socket; returns the name."""
        import psycopg
        from psycopg import sql

        connection = psycopg.connect(
            host=self.socket_dir, port=self.port, user="postgres", dbname="postgres", autocommit=True
        )  # autocommit: CREATE DATABASE cannot run inside a transaction
        try:
            if role_password is not None:  # DDL takes no bound parameters: a quoted literal
                role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
                connection.execute(role.format(sql.Identifier(self.user), sql.Literal(role_password)))
            database = sql.SQL("CREATE DATABASE {} OWNER {}")
            connection.execute(database.format(sql.Identifier(name), sql.Identifier(self.user)))
        finally:
            connection.close()
        return name


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = _postgres_bin()
    require("PostgreSQL", [] if bindir else ["initdb", "pg_ctl"])
    try:
        import psycopg  # noqa: F401  (the optuna-pg extra, in dev)
    except ModuleNotFoundError:
        require("PostgreSQL", ["psycopg (pip install -e '.[dev]')"])
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="dfl-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root: the package's unprivileged user runs it
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    server = Postgres("127.0.0.1", port, "dfl", secrets.token_urlsafe(12), "optuna", str(base))

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120, cwd=base)

    init = pg(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--no-sync",
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr[-2000:]}")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = pg(
        str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start"
    )
    try:
        if started.returncode != 0:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {started.stderr[-1000:]}\n{log[-2000:]}")
        server.create_database(server.database, role_password=server.password)
        yield server
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        deadline = time.monotonic() + 30
        while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(base, ignore_errors=True)
