"""`/metrics` and score drift against real uvicorn processes over real sockets, read with prometheus-client's own
parser: the counters match what was sent (answered, refused by reason), two workers add up (multiprocess mode,
a killed worker's counts kept), the key guards the scrape, and a shifted stream of images raises the drift gauge
while an unshifted one does not, against the validation distribution that training recorded in the bundle."""

from __future__ import annotations

import io
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from deepfake_lightning.bundle import open_model, package_version
from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.server_process import ServerProcess
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from tests.conftest import TINY_TRAINER, write_image
from tests.fixtures_inference import compose_entry, face_like_image, write_video
from tests.test_inference_service import png_bytes

pytest_plugins = ("tests.fixtures_inference",)

KEY = "metrics-test-key-0123"
AUTH = {"X-API-Key": KEY}
UPLOAD_LIMIT = 200_000


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics` as {(sample name, sorted labels): value}."""
    response = httpx.get(f"{url}/metrics", headers=headers or AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _post(url: str, path: str, files: object, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(timeout=60, headers={"Connection": "close"}) as client:  # a new connection each
        return client.post(f"{url}{path}", files=files, headers=AUTH if headers is None else headers)


@pytest.mark.parametrize("public", [False, True])
def test_metrics_public_opens_the_scrape_alone(tiny_ckpt: Path, public: bool) -> None:
    """`metrics_public=true` is for a scraper that cannot hold the key: /metrics opens, /v1/* keeps the key."""
    settings = ServiceSettings(api_key=KEY, metrics_public=public)
    client = TestClient(create_app(Detector.load(tiny_ckpt), settings))
    assert client.get("/metrics").status_code == (200 if public else 401)
    assert client.get("/metrics", headers=AUTH).status_code == 200
    assert (
        client.get("/v1/model").status_code == 401
        and client.get("/v1/model", headers=AUTH).status_code == 200
    )


def test_a_video_answer_is_counted_with_its_own_score_and_label(tiny_ckpt: Path, tmp_path: Path) -> None:
    """A video counts once, as its summary's score and label, in `source="video"`: never in the image drift."""
    client = TestClient(create_app(Detector.load(tiny_ckpt), ServiceSettings(video_num_frames=4)))
    video = write_video(tmp_path / "clip.mp4", frames=12)
    answer = client.post("/v1/predict/video", files={"file": ("clip.mp4", video.read_bytes())})
    assert answer.status_code == 200, answer.text
    summary = answer.json()["summary"]
    score = summary.get("p_fake_video", summary.get("p_fake_mean"))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }
    assert value(samples, "dfl_p_fake_count", source="video") == 1
    assert value(samples, "dfl_p_fake_sum", source="video") == pytest.approx(score)
    assert value(samples, "dfl_verdicts_total", source="video", label=summary["label"]) == 1
    assert value(samples, "dfl_p_fake_count", source="image") == 0
    assert value(samples, "dfl_score_drift_scores") == 0
    route = {"route": "/v1/predict/video", "method": "POST", "status": "200"}
    assert value(samples, "dfl_http_requests_total", **route) == 1


def test_the_metrics_folder_holds_this_runs_values_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` empties PROMETHEUS_MULTIPROC_DIR of an earlier run's values, whatever `workers` is (the two-worker
    fixture below checks it through a real server)."""
    from deepfake_lightning.inference.workers import empty_metrics_dir

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert empty_metrics_dir() is None
    folder = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    assert empty_metrics_dir() == folder and folder.is_dir()
    (folder / "counter_123.db").write_bytes(b"stale")
    (folder / "notes.txt").write_text("not ours")
    empty_metrics_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def assert_nothing_hidden(text: str, *client_chosen: str) -> None:
    """What the hardening keeps from a caller without the key is not in a scrape either: software versions
    (`/v1/model` drops them), the interpreter and process collectors, server paths, and anything a client chose
    (file names, request paths)."""
    import fastapi
    import torch

    for hidden in ("python_info", "process_", package_version(), torch.__version__, fastapi.__version__,
                   "/tmp", *client_chosen):  # fmt: skip
        assert hidden not in text, hidden


# --- two workers: counters, refusals, the key, a killed worker ------------------------------------------------


def _worker_pids(folder: Path) -> set[int]:
    """Workers whose metrics exist (each writes its in-progress gauge file when its app is built)."""
    return {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("gauge_livesum_*.db")}


def _served(folder: Path) -> dict[int, float]:
    """Requests each worker process has counted, from its own file."""
    served = {}
    for path in folder.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(path)], accumulate=False)
        served[int(path.stem.rsplit("_", 1)[1])] = sum(
            s.value for m in metrics for s in m.samples if s.name == "dfl_http_requests_total"
        )
    return served


@pytest.fixture(scope="module")
def workers(
    tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    folder = tmp_path_factory.mktemp("prometheus_multiproc")
    (folder / "counter_1.db").write_bytes(b"stale")  # left by an earlier run: serve empties the folder
    env = {"DEEPFAKE_API_KEY": KEY, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    overrides = ["workers=2", f"max_upload_bytes={UPLOAD_LIMIT}"]
    with ServerProcess(tiny_ckpt, overrides, env=env) as server:
        deadline = time.monotonic() + 300
        while len(_worker_pids(folder)) < 2:  # the second worker may still be opening its model
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.3)
        yield server, folder


def test_metrics_need_the_key_unless_public(workers: tuple[ServerProcess, Path]) -> None:
    server, _ = workers
    assert httpx.get(f"{server.url}/metrics", timeout=30).status_code == 401
    assert (
        httpx.get(f"{server.url}/metrics", headers={"X-API-Key": "wrong-key-000"}, timeout=30).status_code
        == 401
    )
    assert "dfl_http_requests_total" in httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=30).text
    # what Prometheus's `authorization` scrape setting sends (deploy/prometheus.yml)
    bearer = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert bearer.status_code == 200 and "# TYPE dfl_p_fake histogram" in bearer.text


def test_counters_match_what_was_sent_over_two_workers(workers: tuple[ServerProcess, Path]) -> None:
    server, folder = workers
    assert not (folder / "counter_1.db").exists()  # the stale file of an "earlier run" was removed
    before = scrape(server.url)
    good, answers = 0, []
    with ThreadPoolExecutor(8) as pool:
        # good images until both workers have answered some (the kernel picks the worker of each connection)
        while len([n for n in _served(folder).values() if n > 0]) < 2 or good < 8:
            assert good < 200, f"one worker answered everything: {_served(folder)}"
            batch = [png_bytes(face_like_image(1000 + good + i)) for i in range(8)]
            sent = pool.map(lambda data: _post(server.url, "/v1/predict", {"file": ("f.png", data)}), batch)
            answers += [r.json() for r in sent]
            good += 8
        batch = [("files", (f"{i}.png", png_bytes(face_like_image(i)))) for i in range(3)]
        batch_answer = _post(
            server.url, "/v1/predict/batch", [*batch, ("files", ("bad.png", b"not an image"))]
        )
        answers += [p for p in batch_answer.json()["predictions"] if "p_fake" in p]
        refused = {
            "no key": _post(server.url, "/v1/predict", {"file": ("f.png", b"x")}, headers={}),
            "wrong key": _post(
                server.url, "/v1/predict", {"file": ("f.png", b"x")}, {"X-API-Key": "nope-nope"}
            ),
            "not a form": httpx.post(
                f"{server.url}/v1/predict", content=b"x", headers={**AUTH, "content-type": "text/plain"}
            ),
            "too large": _post(
                server.url, "/v1/predict", {"file": ("f.png", b"\0" * (UPLOAD_LIMIT + 100_000))}
            ),
            "not an image": _post(server.url, "/v1/predict", {"file": ("f.png", b"random bytes")}),
            "no route": httpx.get(f"{server.url}/v1/nothing-here", headers=AUTH),
        }
    statuses = {name: r.status_code for name, r in refused.items()}
    assert statuses == {"no key": 401, "wrong key": 401, "not a form": 415, "too large": 413,
                        "not an image": 422, "no route": 404}  # fmt: skip
    assert batch_answer.status_code == 200 and len(answers) == good + 3

    after = scrape(server.url)

    def sent(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert sent("dfl_http_requests_total", route="/v1/predict", method="POST", status="200") == good
    assert sent("dfl_http_requests_total", route="/v1/predict/batch", method="POST", status="200") == 1
    assert sent("dfl_http_requests_total", route="other", method="GET", status="404") == 1
    assert sent("dfl_http_request_duration_seconds_count", route="/v1/predict") == good + 5
    reasons = {
        ("api_key", "401"): 2,
        ("content_type", "415"): 1,
        ("body_size", "413"): 1,
        ("unprocessable", "422"): 1,
        ("not_found", "404"): 1,
    }
    for (reason, status), count in reasons.items():
        assert sent("dfl_refused_requests_total", reason=reason, status=status) == count, reason
    scores = [a["p_fake"] for a in answers]
    assert sent("dfl_p_fake_count", source="image") == len(scores)
    assert sent("dfl_p_fake_sum", source="image") == pytest.approx(sum(scores))
    assert sent("dfl_p_fake_bucket", source="image", le="+Inf") == len(scores)
    for label, count in Counter(a["label"] for a in answers).items():
        assert sent("dfl_verdicts_total", source="image", label=label) == count
    assert sent("dfl_batch_size_sum") == len(scores)  # every image scored went through one model call
    assert 1 <= sent("dfl_batch_size_count") <= len(scores)
    assert value(after, "dfl_http_requests_in_progress") == 1  # the scrape itself
    again = [scrape(server.url) for _ in range(4)]  # any worker may answer a scrape: each sees every worker
    key = ("dfl_http_requests_total", (("method", "POST"), ("route", "/v1/predict"), ("status", "200")))
    assert {s[key] for s in again} == {after[key]}


def test_a_killed_worker_keeps_its_counts_and_its_replacement_serves(
    workers: tuple[ServerProcess, Path],
) -> None:
    server, folder = workers
    before = scrape(server.url)
    served = _served(folder)
    victim = max(served, key=lambda pid: served[pid])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 300
    while len(_worker_pids(folder) - {victim}) < 2:  # uvicorn starts a replacement
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.3)
    for i in range(4):
        assert (
            _post(server.url, "/v1/predict", {"file": ("f.png", png_bytes(face_like_image(i)))}).status_code
            == 200
        )
    after = scrape(server.url)
    key = ("dfl_http_requests_total", (("method", "POST"), ("route", "/v1/predict"), ("status", "200")))
    assert after[key] == before[key] + 4  # the dead worker's requests still counted
    assert not list(folder.glob(f"gauge_live*_{victim}.db"))  # its live gauges forgotten
    assert value(after, "dfl_http_requests_in_progress") == 1


# --- drift: a model whose scores depend on the image, with a real validation record -------------------------


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG")
    return buffer.getvalue()


def _noise(seed: int, high: int = 256) -> bytes:
    """The validation split's kind of image (`write_image`: uniform noise, 48-px JPEG), or a darker one."""
    return _jpeg(np.random.default_rng(seed).integers(0, high, (48, 48, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def drift_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run with 300 validation images. A timm ResNet-10 rather than MobileNetV2: at 32 px a barely
    trained MobileNetV2 gives one p_fake for every image (1x1 feature map), and drift needs scores that move."""
    from deepfake_lightning.train import train

    base = tmp_path_factory.mktemp("drift_run")
    for split, per_class in (("train", 8), ("valid", 150), ("test", 2)):
        for cls in ("real", "fake"):
            for i in range(per_class):
                write_image(base / "data" / split / cls / f"{i}.jpg", seed=hash((split, cls, i)) % 100_000)
    overrides = [*TINY_TRAINER, "data=folder", f"data.root={base / 'data'}", "test=false",
                 "model.backbone.name=timm:resnet10t", "model.backbone.weights=null"]  # fmt: skip
    train(compose_entry("train", overrides, base / "run"))
    return base / "run" / "checkpoints" / "best.ckpt"


def test_training_records_the_validation_distribution_in_the_bundle(drift_model: Path) -> None:
    scores = open_model(drift_model).bundle.validation_scores
    assert scores is not None and scores["n"] == 300 and scores["split"] == "valid"
    assert sum(scores["counts"]) == 300 and len(scores["counts"]) == 10 and min(scores["counts"]) >= 25


def test_a_shifted_stream_raises_the_drift_gauge_and_an_unshifted_one_does_not(drift_model: Path) -> None:
    overrides = ["min_size=32", "drift_window=200", "drift_min_scores=200", "drift_threshold=0.25"]
    with ServerProcess(drift_model, overrides) as server:  # no key: /metrics and /v1/* open

        def stream(images: list[bytes]) -> None:
            for start in range(0, len(images), 16):
                files = [("files", (f"{i}.jpg", data)) for i, data in enumerate(images[start : start + 16])]
                answer = _post(server.url, "/v1/predict/batch", files, {})
                assert answer.status_code == 200 and all("p_fake" in p for p in answer.json()["predictions"])

        stream([_noise(500_000 + i) for i in range(198)])
        probe = _post(server.url, "/v1/predict", {"file": ("client-chosen-name.jpg", _noise(500_198))}, {})
        assert probe.status_code == 200
        assert httpx.get(f"{server.url}/v1/client-chosen-path", timeout=30).status_code == 404
        assert ("dfl_score_drift", (("statistic", "psi"),)) not in scrape(server.url)  # 199 < 200
        keyless = httpx.get(f"{server.url}/metrics", timeout=30)  # no key on this server: open, as /v1/* is
        assert keyless.status_code == 200
        assert_nothing_hidden(keyless.text, "client-chosen", str(drift_model.parent))
        stream([_noise(500_199)])
        like_validation = scrape(server.url)
        unshifted = value(like_validation, "dfl_score_drift", statistic="psi")
        assert 0 < unshifted < 0.25 and value(like_validation, "dfl_score_drift_scores") == 200
        assert "score drift" not in server.log_tail(100_000)

        stream([_noise(600_000 + i, high=64) for i in range(200)])  # darker images: the window is all new
        shifted = value(scrape(server.url), "dfl_score_drift", statistic="psi")
        assert shifted > 0.25 and shifted > 5 * unshifted
        status = httpx.get(f"{server.url}/v1/model", timeout=30).json()["drift"]
        assert status["value"] == pytest.approx(shifted) and status["drifting"] is True
        assert status["reference"] == {"split": "valid", "n": 300} and status["scores"] == 200
        assert "score drift: PSI" in server.log_tail(100_000)  # the warning, once the threshold was passed
