"""deploy/: N service replicas behind nginx (Compose) and the Kubernetes manifest.

There is no Docker engine here, so the Compose file is checked for what it must say (the repo's Dockerfile,
readiness on /health, the model read-only); nginx's own parser checks nginx.conf when nginx is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONF_DIR, REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


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


@pytest.mark.skipif(
    shutil.which("nginx") is None,
    reason="nginx is not installed (apt-get install nginx-light); structure only",
)
def test_nginx_parses_the_config(tmp_path: Path) -> None:
    def check(text: str) -> subprocess.CompletedProcess:
        conf = tmp_path / "nginx.conf"
        conf.write_text(text.replace("server detector:8000", "server 127.0.0.1:8000"))  # no Docker DNS here
        command = ["nginx", "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
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
