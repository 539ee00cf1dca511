"""deploy/: N service replicas behind nginx (Compose) and the Kubernetes manifest.

There is no Docker engine here, so the Compose file is checked for what it must say (the repo's Dockerfile,
readiness on /health, the model read-only). nginx.conf is checked by nginx itself: parsed, then run in front of a
real service process, where its limits are probed over real sockets. `.ci/run` installs Debian's nginx-light, so
in CI (`CI` set) a missing nginx fails these tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from deepfake_lightning.inference.server_process import ServerProcess, free_port
from tests.conftest import CONF_DIR, REPO_ROOT

pytest_plugins = ("tests.fixtures_inference",)

DEPLOY = REPO_ROOT / "deploy"
KEY = "nginx-test-key-0123"


def require_nginx() -> str:
    nginx = shutil.which("nginx")
    if nginx is None:
        message = "nginx is not installed (apt-get install nginx-light; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return nginx


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_replicas_of_the_dockerfile_with_readiness_and_a_read_only_model() -> None:
    detector = _compose()["services"]["detector"]
    context = (DEPLOY / detector["build"]["context"]).resolve()
    assert context == REPO_ROOT and (context / detector["build"]["dockerfile"]).is_file()
    assert detector["deploy"]["replicas"] >= 2
    assert "http://127.0.0.1:8000/health" in " ".join(detector["healthcheck"]["test"])
    [mount] = detector["volumes"]
    assert (mount["target"], mount["read_only"]) == ("/models", True)
    assert detector["environment"]["DEEPFAKE_MODEL"].startswith("/models/")
    assert "ports" not in detector  # replicas are reached through the balancer only
    dockerfile = (context / detector["build"]["dockerfile"]).read_text()
    assert "EXPOSE 8000" in dockerfile and "host=0.0.0.0" in dockerfile


def test_compose_starts_nginx_once_the_replicas_are_healthy() -> None:
    lb = _compose()["services"]["lb"]
    assert lb["image"].startswith("nginx:")
    assert lb["depends_on"]["detector"]["condition"] == "service_healthy"
    [mount] = lb["volumes"]
    assert (DEPLOY / mount["source"]).resolve() == DEPLOY / "nginx.conf"
    assert (mount["target"], mount["read_only"]) == ("/etc/nginx/nginx.conf", True)
    assert all(str(port).startswith("127.0.0.1:") for port in lb["ports"])  # loopback, as the service


def test_nginx_config_balances_over_the_detector_service() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    assert re.search(r"upstream detector \{[^}]*server detector:8000", text)
    assert text.count("proxy_pass http://detector") == 2 and "location = /health" in text
    limit = re.search(r"client_max_body_size (\d+)m;", text)
    serve = yaml.safe_load((CONF_DIR / "serve.yaml").read_text())
    assert (
        limit and int(limit.group(1)) * 2**20 > serve["max_video_bytes"]
    )  # nginx m = MiB; service answers 413


def test_nginx_parses_the_config(tmp_path: Path) -> None:
    nginx = require_nginx()

    def check(text: str) -> subprocess.CompletedProcess:
        conf = tmp_path / "nginx.conf"
        conf.write_text(text.replace("server detector:8000", "server 127.0.0.1:8000"))  # no Docker DNS here
        command = [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
        command += ["-g", f"pid {tmp_path / 'nginx.pid'};"]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    text = (DEPLOY / "nginx.conf").read_text()
    good = check(text)
    assert good.returncode == 0 and "syntax is ok" in good.stderr, good.stderr
    broken = check(text.replace("least_conn;", "least_connections;"))
    assert broken.returncode != 0 and "least_connections" in broken.stderr


def test_kubernetes_manifest_has_readiness_and_a_read_only_model() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "detector.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert set(kinds) == {"Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    [mount] = container["volumeMounts"]
    assert mount["readOnly"] is True and mount["mountPath"] == "/models"
    [volume] = pod["volumes"]
    assert volume["name"] == mount["name"] and volume["persistentVolumeClaim"]["readOnly"] is True
    assert kinds["Deployment"]["spec"]["replicas"] >= 2
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]


def test_nginx_holds_the_services_limits() -> None:
    """Each limit of the service has its nginx counterpart, no looser (conf/serve.yaml against nginx.conf)."""
    text = (DEPLOY / "nginx.conf").read_text()
    serve = yaml.safe_load((CONF_DIR / "serve.yaml").read_text())

    def seconds(directive: str) -> int:
        found = re.search(rf"^\s*{directive} (\d+)s;", text, re.M)
        assert found, directive
        return int(found.group(1))

    assert seconds("client_header_timeout") <= serve["header_timeout_s"]
    assert seconds("client_body_timeout") <= serve["body_timeout_s"]
    assert seconds("keepalive_timeout") <= serve["timeout_keep_alive"]
    buffers = re.search(r"large_client_header_buffers \d+ (\d+)k;", text)
    assert buffers and int(buffers.group(1)) * 1024 <= serve["max_header_bytes"]
    assert re.search(r"limit_conn_zone \$binary_remote_addr zone=(\w+):", text)
    assert re.search(r"^\s*limit_conn \w+ \d+;", text, re.M) and "server_tokens off;" in text


@pytest.fixture(scope="module")
def behind_nginx(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """deploy/nginx.conf, run by a real nginx in front of a real service process; the URL of nginx. Only the
    upstream address, the port and client_header_timeout (2 s, so the test is quick) are changed."""
    nginx = require_nginx()
    folder = tmp_path_factory.mktemp("nginx")
    # nginx names the upstream `detector` in the Host header of /health (replicas bound to 0.0.0.0 accept any)
    hosts = "allowed_hosts=[detector,127.0.0.1,localhost]"
    with ServerProcess(tiny_ckpt, [hosts], env={"DEEPFAKE_API_KEY": KEY}) as service:
        port = free_port()
        text = (DEPLOY / "nginx.conf").read_text()
        text = text.replace("server detector:8000", f"server 127.0.0.1:{service.port}")
        text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        text = re.sub(r"client_header_timeout \d+s;", "client_header_timeout 2s;", text)
        text = text.replace("http {", f"http {{\n    access_log {folder}/access.log;", 1)
        (folder / "nginx.conf").write_text(text)
        command = [
            nginx,
            "-p",
            str(folder),
            "-c",
            str(folder / "nginx.conf"),
            "-e",
            str(folder / "error.log"),
        ]
        command += ["-g", f"daemon off; pid {folder}/nginx.pid;"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, (
                    folder / "error.log"
                ).read_text()
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_requests_pass_through_nginx(behind_nginx: str) -> None:
    from tests.test_inference_service import GOOD

    response = httpx.post(
        f"{behind_nginx}/v1/predict",
        files={"file": ("face.png", GOOD)},
        headers={"X-API-Key": KEY},
        timeout=60,
    )
    assert response.status_code == 200 and 0 <= response.json()["p_fake"] <= 1
    assert "nginx/" not in response.headers.get("server", "")  # server_tokens off


def test_nginx_refuses_a_body_over_client_max_body_size(behind_nginx: str) -> None:
    head = b"POST /v1/predict/video HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (200 * 2**20)
    with _connect(behind_nginx) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 413")


def test_nginx_drops_a_silent_client_at_client_header_timeout(behind_nginx: str) -> None:
    with _connect(behind_nginx) as sock:
        start = time.monotonic()
        sock.settimeout(10)
        try:
            sock.recv(100)  # b"" (closed) once the header deadline has passed
        except ConnectionResetError:
            pass
        assert 1.5 < time.monotonic() - start < 6


def test_nginx_limits_the_requests_of_one_client(behind_nginx: str) -> None:
    """32 uploads in progress from one address (head sent, body withheld): the 33rd request gets 503."""
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-API-Key: %s\r\n\r\n"
        % KEY.encode()
    )
    held = [_connect(behind_nginx) for _ in range(32)]
    try:
        for sock in held:
            sock.sendall(head)
        time.sleep(0.5)
        with _connect(behind_nginx) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
