"""deploy/prometheus.yml and its place in deploy/compose.yaml: checked for what they must say, by Prometheus's own
`promtool`, and by a real Prometheus scraping a real service process with the key, as in the Compose set-up.

There is no Docker here, so the replicas' DNS discovery is replaced by the one service's address; everything else
(path, Bearer key from a file, rules) is the file as shipped. `.ci/run` installs Debian's prometheus, so in CI
(`CI` set) a missing Prometheus fails these tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from deepfake_lightning.inference.server_process import ServerProcess, free_port
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import face_like_image
from tests.test_inference_service import png_bytes

pytest_plugins = ("tests.fixtures_inference",)

DEPLOY = REPO_ROOT / "deploy"
KEY = "prometheus-test-key-01"


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        message = f"{tool} is not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _scrape_config() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus.yml").read_text())


def _mounts(service: dict) -> dict[str, dict]:
    return {mount["target"]: mount for mount in service["volumes"]}


def test_compose_runs_prometheus_on_the_shipped_config_with_the_key_as_a_secret() -> None:
    compose = _compose()
    prometheus, detector = compose["services"]["prometheus"], compose["services"]["detector"]
    assert prometheus["image"].startswith("prom/prometheus:")
    mounts = _mounts(prometheus)
    config = mounts["/etc/prometheus/prometheus.yml"]
    assert (DEPLOY / config["source"]).resolve() == DEPLOY / "prometheus.yml" and config["read_only"] is True
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    for rules in _scrape_config()["rule_files"]:  # every rule file it names is mounted from deploy/
        assert (DEPLOY / mounts[rules]["source"]).is_file() and mounts[rules]["read_only"] is True
    assert prometheus["depends_on"]["detector"]["condition"] == "service_healthy"
    assert all(
        str(port).startswith("127.0.0.1:") for port in prometheus["ports"]
    )  # loopback, as the balancer
    # the secret is the replicas' own key, from the same variable, and nowhere in the files
    [secret] = prometheus["secrets"]
    assert compose["secrets"][secret]["environment"] == "DEEPFAKE_API_KEY"
    assert "DEEPFAKE_API_KEY" in detector["environment"]["DEEPFAKE_API_KEY"]
    job = next(j for j in _scrape_config()["scrape_configs"] if j["job_name"] == "detector")
    assert job["authorization"] == {"type": "Bearer", "credentials_file": f"/run/secrets/{secret}"}


def test_prometheus_finds_every_replica_of_the_detector_service() -> None:
    job = next(j for j in _scrape_config()["scrape_configs"] if j["job_name"] == "detector")
    detector = _compose()["services"]["detector"]
    assert job["metrics_path"] == "/metrics"
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["detector"] and discovery["type"] == "A"  # every replica's address
    assert str(discovery["port"]) in [str(port) for port in detector["expose"]]


def test_nginx_keeps_metrics_off_the_edge() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    block = text.split("location ^~ /metrics", 1)[1].split("}", 1)[0]
    assert "return 404;" in block and "proxy_pass" not in block


def _local_config(folder: Path, target: str) -> Path:
    """deploy/prometheus.yml with the one target instead of Docker's DNS, the key file and rules in `folder`."""
    config = _scrape_config()
    (folder / "key").write_text(KEY + "\n")
    shutil.copy(DEPLOY / "prometheus-rules.yml", folder / "prometheus-rules.yml")
    config["rule_files"] = [str(folder / Path(f).name) for f in config["rule_files"]]
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        job["authorization"]["credentials_file"] = str(folder / "key")
        del job["dns_sd_configs"]
        job["static_configs"] = [{"targets": [target]}]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_promtool_accepts_the_config_and_its_rules(tmp_path: Path) -> None:
    promtool = require("promtool")
    checked = subprocess.run(
        [promtool, "check", "config", str(_local_config(tmp_path, "127.0.0.1:8000"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


@pytest.fixture(scope="module")
def prometheus(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real service process (with a key) and a real Prometheus scraping it every second: their URLs."""
    binary = require("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    with ServerProcess(tiny_ckpt, env={"DEEPFAKE_API_KEY": KEY}) as service:
        port = free_port()
        command = [
            binary,
            f"--config.file={_local_config(folder, f'127.0.0.1:{service.port}')}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with (folder / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, (
                    folder / "prometheus.log"
                ).read_text()
                time.sleep(0.3)
            yield url, service.url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _query(url: str, expression: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expression}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_a_real_prometheus_scrapes_the_service_with_the_key(prometheus: tuple[str, str]) -> None:
    url, service = prometheus
    for seed in range(3):
        answer = httpx.post(
            f"{service}/v1/predict",
            files={"file": ("f.png", png_bytes(face_like_image(seed)))},
            headers={"X-API-Key": KEY},
            timeout=60,
        )
        assert answer.status_code == 200
    expression = 'sum(dfl_http_requests_total{route="/v1/predict",status="200"})'
    deadline = time.monotonic() + 60
    while not (found := _query(url, expression)) or float(found[0]["value"][1]) < 3:
        assert time.monotonic() < deadline, f"{expression}: {found}"
        time.sleep(0.5)
    assert float(found[0]["value"][1]) == 3
    [up] = _query(url, 'up{job="detector"}')
    assert up["value"][1] == "1"  # the scrape authenticated (a 401 would make it 0)
    assert float(_query(url, 'sum(dfl_p_fake_count{source="image"})')[0]["value"][1]) == 3
    rules = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"DetectorScoreDrift", "DetectorServerErrors", "DetectorMostlyRefusing"} <= names
    targets = httpx.get(f"{url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
