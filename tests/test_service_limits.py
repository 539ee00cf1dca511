"""Limits that hold against a real uvicorn process over a real socket: the body limit on the byte stream (chunked
or not, nothing spooled to disk), the body deadline for slow clients, and video decoding outside the model."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deepfake_lightning.inference import Detector
from deepfake_lightning.inference import service as service_module
from deepfake_lightning.inference.server_process import ServerProcess
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from tests.fixtures_inference import face_like_image, write_video
from tests.raw_http import BOUNDARY, part_head, read_answer, request_head, status_and_body
from tests.test_inference_service import png_bytes

pytest_plugins = ("tests.fixtures_inference",)

LIMIT = 200_000  # max_upload_bytes of the server under test: below Starlette's 1 MB spool threshold
GOOD = png_bytes(face_like_image(40, size=80))


@pytest.fixture(scope="module")
def server(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """The real server with its TMPDIR in a folder of its own, so every file it spools can be seen."""
    spool = tmp_path_factory.mktemp("server_tmp")
    overrides = [f"max_upload_bytes={LIMIT}", "body_timeout_s=2"]
    with ServerProcess(tiny_ckpt, overrides, env={"TMPDIR": str(spool)}) as running:
        yield running, spool


def _spooled(pid: int, spool: Path) -> list[str]:
    """Files in the spool folder and files the server holds open there (unnamed O_TMPFILE files included)."""
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(spool)):
            held.append(target)
    return sorted(p.name for p in spool.iterdir()) + held


def test_chunked_upload_is_cut_at_the_limit_before_anything_is_spooled(server) -> None:
    """5 MB sent chunked (no Content-Length) in 32 KB chunks: the 413 arrives after about LIMIT bytes, while
    the client is still sending, and at no point does the server hold a file in its TMPDIR."""
    running, spool = server
    assert _spooled(running.pid, spool) == []
    head = request_head(
        running.port,
        "/v1/predict",
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Transfer-Encoding": "chunked"},
    )
    chunk = b"\0" * 32768
    sent, answer, seen = 0, b"", []
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part_head()), part_head()))
        sock.setblocking(False)
        for _ in range(160):  # 5 MB
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            seen += _spooled(running.pid, spool)
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if answer:
                break
        sock.setblocking(True)
        answer += read_answer(sock, 10)
    status, body = status_and_body(answer)
    assert status == 413 and "larger than the limit of 200000 bytes" in body["detail"], body
    assert sent < 1_000_000, f"the server read {sent} bytes before refusing"
    assert seen == [] and _spooled(running.pid, spool) == []
    assert httpx.get(f"{running.url}/health", timeout=10).status_code == 200


def test_content_length_over_the_limit_is_refused_before_the_body(server) -> None:
    running, spool = server
    head = request_head(
        running.port,
        "/v1/predict",
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(10**9)},
    )
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(head)  # not one body byte
        status, body = status_and_body(read_answer(sock, 10))
    assert status == 413 and "/v1/predict" in body["detail"]
    assert _spooled(running.pid, spool) == []


def test_slow_client_gets_408_and_does_not_hold_the_server(server) -> None:
    """A body trickled at 20 bytes a second gets 408 once body_timeout_s=2 has passed, long before it could
    finish, while another client is answered meanwhile."""
    running, _ = server
    payload = part_head("slow.png") + GOOD + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = request_head(
        running.port,
        "/v1/predict",
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(len(payload))},
    )
    other: list[int] = []
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(head)
        start = time.monotonic()
        meanwhile = threading.Thread(
            target=lambda: other.append(
                httpx.post(
                    f"{running.url}/v1/predict", files={"file": ("ok.png", GOOD)}, timeout=120
                ).status_code
            )
        )
        meanwhile.start()
        sock.setblocking(False)
        answer, sent = b"", 0
        while time.monotonic() - start < 120 and not answer:
            try:
                sent += sock.send(payload[sent : sent + 2])
            except (BrokenPipeError, ConnectionResetError):
                break
            except BlockingIOError:
                pass
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.1)
        elapsed = time.monotonic() - start
        sock.setblocking(True)
        answer += read_answer(sock, 10)
        meanwhile.join(120)
    status, body = status_and_body(answer)
    assert status == 408 and "body_timeout_s=2" in body["detail"], body
    assert elapsed >= 1.9 and sent < len(payload) // 4, (elapsed, sent)
    assert other == [200]


@pytest.fixture(scope="module")
def detector(tiny_ckpt: Path) -> Detector:
    return Detector.load(tiny_ckpt)


def test_an_image_is_answered_while_a_video_is_being_decoded(
    detector: Detector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The video's decoder is held after its second frame until the image request has been answered: with
    decoding under the model lock (the old path) the image would wait for the video instead."""
    clip = write_video(tmp_path / "long.mp4", frames=24).read_bytes()
    decoding, release = threading.Event(), threading.Event()
    real_iter_frames = service_module.iter_frames

    def held_frames(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - same signature as iter_frames
        for i, frame in enumerate(real_iter_frames(*args, **kwargs)):
            if i == 2:
                decoding.set()
                release.wait(15)
            yield frame

    monkeypatch.setattr(service_module, "iter_frames", held_frames)
    app = create_app(detector, ServiceSettings(video_num_frames=8, video_batch_size=4))

    async def scenario() -> tuple[httpx.Response, bool, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            video = asyncio.create_task(client.post("/v1/predict/video", files={"file": ("long.mp4", clip)}))
            assert await asyncio.to_thread(decoding.wait, 15), "the video never started decoding"
            image = await client.post("/v1/predict", files={"file": ("face.png", GOOD)})
            video_finished_first = video.done()
            release.set()
            return image, video_finished_first, await video

    image, video_finished_first, video = asyncio.run(scenario())
    assert image.status_code == 200 and not video_finished_first
    assert image.json()["p_fake"] == pytest.approx(detector.predict(GOOD)[0].p_fake, abs=1e-6)
    assert video.status_code == 200 and video.json()["summary"]["frames_scored"] == 8


def test_video_pixel_and_wall_clock_caps(detector: Detector, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    clip = write_video(tmp_path / "clip.mp4", frames=12).read_bytes()  # 96x80 frames
    small = TestClient(create_app(detector, ServiceSettings(video_max_frame_pixels=96 * 80 - 1)))
    response = small.post("/v1/predict/video", files={"file": ("clip.mp4", clip)})
    assert (
        response.status_code == 413 and "clip.mp4: frames of 96x80 pixels exceed" in response.json()["detail"]
    )
    hurried = TestClient(create_app(detector, ServiceSettings(video_timeout_s=1e-6)))
    response = hurried.post("/v1/predict/video", files={"file": ("clip.mp4", clip)})
    assert response.status_code == 413 and "wall-clock cap" in response.json()["detail"]
    assert ".video" not in response.json()["detail"]
