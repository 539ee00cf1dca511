"""HTTP service: every client error path is a 4xx JSON answer (TestClient), plus one real uvicorn process."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepfake_lightning.bench.loadtest import png_claiming
from deepfake_lightning.inference import Detector, load_detector
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import face_like_image, write_video

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt, tiny_onnx, ... shared fixtures

KEY = "test-key-0123456789"


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector(tiny_ckpt: Path) -> Detector:
    return Detector.load(tiny_ckpt)


@pytest.fixture(scope="module")
def client(detector: Detector) -> TestClient:
    settings = ServiceSettings(
        max_upload_bytes=200_000, max_pixels=1_000_000, max_batch_files=3, video_num_frames=4
    )
    return TestClient(create_app(detector, settings))


GOOD = png_bytes(face_like_image(30, size=80))


def _post(client: TestClient, data: bytes, name: str = "x.png", **kwargs) -> httpx.Response:
    return client.post("/v1/predict", files={"file": (name, data, "image/png")}, **kwargs)


def test_health_model_and_openapi(client: TestClient, detector: Detector) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    model = client.get("/v1/model").json()
    assert model["model"]["threshold"] == detector.threshold
    assert model["model"]["source"] == "best.ckpt"  # no server paths
    assert model["limits"]["max_batch_files"] == 3 and "api_key" not in model["limits"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/model", "/v1/predict", "/v1/predict/batch", "/v1/predict/video"} <= set(paths)
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404  # no CDN pages
    assert "version" not in model and "versions" not in model["model"]  # no key set: no library versions
    assert "package" not in model["card"]["version"] and model["card"]["version"]["model_sha256"]


def test_predict_matches_the_detector(client: TestClient, detector: Detector) -> None:
    response = _post(client, GOOD)
    assert response.status_code == 200
    body = response.json()
    expected = detector.predict(GOOD)[0]
    assert body["p_fake"] == pytest.approx(expected.p_fake) and body["label"] == expected.label
    assert body["threshold"] == detector.threshold and "attention" not in body
    with_map = client.post("/v1/predict?attention=true", files={"file": ("x.png", GOOD, "image/png")}).json()
    assert np.asarray(with_map["attention"]).ndim == 2


@pytest.mark.parametrize(
    ("data", "status", "match"),
    [
        (b"", 422, "empty"),
        (b"plain text, not an image", 422, "not an image"),
        (np.random.default_rng(0).bytes(3000), 422, "x.png"),
        (GOOD[: len(GOOD) // 2], 422, "truncated|cannot decode"),
        (png_bytes(face_like_image(31, size=20)), 422, "min_size"),
        (png_claiming(2000, 1000), 413, "exceeds the limit"),  # over max_pixels=1e6
        (png_claiming(30000, 30000), 413, ""),  # a real bomb: PIL refuses it outright
        (b"\0" * 200_001, 413, "larger than the limit"),
    ],
)
def test_bad_uploads_are_4xx_json(client: TestClient, data: bytes, status: int, match: str) -> None:
    response = _post(client, data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert re.search(match, response.json()["detail"])


def test_missing_field_and_wrong_method(client: TestClient) -> None:
    assert client.post("/v1/predict", files={"image": ("x.png", GOOD, "image/png")}).status_code == 422
    not_a_form = client.post("/v1/predict", content=GOOD, headers={"content-type": "image/png"})
    assert not_a_form.status_code == 415 and "expected multipart/form-data" in not_a_form.json()["detail"]
    assert client.get("/v1/predict").status_code == 405


def test_content_length_over_the_request_limit_is_refused_early(client: TestClient) -> None:
    form = {"content-type": "multipart/form-data; boundary=x", "content-length": str(10**9)}
    response = client.post("/v1/predict", content=b"x", headers=form)
    assert response.status_code == 413


def test_batch_mixes_scores_and_per_file_errors(client: TestClient, detector: Detector) -> None:
    files = [("files", ("a.png", GOOD, "image/png")), ("files", ("b.jpg", b"junk", "image/jpeg"))]
    body = client.post("/v1/predict/batch", files=files).json()["predictions"]
    assert [p["filename"] for p in body] == ["a.png", "b.jpg"]
    assert body[0]["p_fake"] == pytest.approx(detector.predict(GOOD)[0].p_fake)
    assert "error" in body[1] and "p_fake" not in body[1]
    too_many = [("files", (f"{i}.png", GOOD, "image/png")) for i in range(4)]
    assert client.post("/v1/predict/batch", files=too_many).status_code == 413
    empty = [("files", ("a.png", b"", "image/png")), ("files", ("b.png", GOOD, "image/png"))]
    response = client.post(
        "/v1/predict/batch", files=empty
    )  # an empty file is one refused entry, as in a CSV
    assert response.status_code == 200 and response.json()["predictions"][0]["reason"] == "empty"
    assert "p_fake" in response.json()["predictions"][1]


def test_video_upload(client: TestClient, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=12).read_bytes()
    body = client.post("/v1/predict/video", files={"file": ("clip.mp4", clip, "video/mp4")}).json()
    assert body["summary"]["frames_scored"] == 4 and len(body["frames"]) == 4
    unknown = client.post("/v1/predict/video", files={"file": ("bad.mp4", b"\0" * 500, "video/mp4")})
    assert unknown.status_code == 415 and "bad.mp4: not a video container" in unknown.json()["detail"]
    damaged = b"\0\0\0\x18ftypmp42" + b"\0" * 500  # an MP4's first box, then nothing of use
    bad = client.post("/v1/predict/video", files={"file": ("bad.mp4", damaged, "video/mp4")})
    assert bad.status_code == 422 and "bad.mp4" in bad.json()["detail"]
    assert ".video" not in bad.json()["detail"]  # the server's temporary path is not leaked


def test_api_key_and_cors(detector: Detector) -> None:
    locked = TestClient(create_app(detector, ServiceSettings(api_key=KEY)))
    assert locked.get("/health").status_code == 200  # probes need no key
    assert locked.get("/v1/model").status_code == 401
    assert locked.get("/v1/model", headers={"X-API-Key": "wrong-key-000"}).status_code == 401
    assert locked.get("/v1/model", headers={"X-API-Key": KEY}).status_code == 200
    assert _post(locked, GOOD).status_code == 401
    origin = {"Origin": "https://app.example.org"}
    assert "access-control-allow-origin" not in locked.get("/health", headers=origin).headers
    open_cors = TestClient(create_app(detector, ServiceSettings(cors_origins=("https://app.example.org",))))
    assert (
        open_cors.get("/health", headers=origin).headers["access-control-allow-origin"]
        == "https://app.example.org"
    )
    with pytest.raises(ValueError, match="api_key"):
        ServiceSettings(api_key="short")
    with pytest.raises(ValueError, match="max_batch_files"):
        ServiceSettings(max_batch_files=0)


def test_ensemble_behind_the_same_app(tiny_ckpt: Path) -> None:
    ensemble = load_detector([tiny_ckpt, tiny_ckpt])
    body = TestClient(create_app(ensemble)).get("/v1/model").json()["model"]
    assert body["kind"] == "ensemble" and len(body["members"]) == 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_uvicorn_server(tiny_ckpt: Path, tmp_path: Path) -> None:
    """Start `python -m deepfake_lightning.serve` on a free loopback port, drive it with httpx, stop it."""
    port = _free_port()
    env = {**os.environ, "DEEPFAKE_API_KEY": KEY}
    command = [
        sys.executable,
        "-m",
        "deepfake_lightning.serve",
        f"ckpt_path={tiny_ckpt}",
        f"port={port}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "log_level=warning",
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # start-up on a loaded shared machine can take minutes
        while True:
            assert process.poll() is None, process.stdout.read().decode(errors="replace")[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not answer /health within 600 s"
            time.sleep(0.5)
        headers = {"X-API-Key": KEY}
        assert httpx.get(f"{base}/v1/model", timeout=10).status_code == 401
        response = httpx.post(
            f"{base}/v1/predict", files={"file": ("x.png", GOOD, "image/png")}, headers=headers, timeout=30
        )
        assert response.status_code == 200 and response.json()["label"] in ("fake", "real")
        junk = httpx.post(
            f"{base}/v1/predict", files={"file": ("j.png", b"junk", "image/png")}, headers=headers, timeout=30
        )
        assert junk.status_code == 422
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
