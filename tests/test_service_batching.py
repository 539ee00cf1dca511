"""Dynamic batching: concurrent requests are scored as one batch, each answer is still its own image's score;
`max_batch_size=1` keeps the serial path; `?explain=true` returns the scored crop and an overlay."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.service import create_app
from deepfake_lightning.inference.settings import ServiceSettings
from deepfake_lightning.prediction.batcher import DynamicBatcher
from tests.fixtures_inference import face_like_image
from tests.test_inference_service import png_bytes

pytest_plugins = ("tests.fixtures_inference",)

IMAGES = [png_bytes(face_like_image(100 + i, size=72)) for i in range(12)]


@pytest.fixture(scope="module")
def detector(tiny_ckpt: Path) -> Detector:
    return Detector.load(tiny_ckpt)


def test_batcher_groups_concurrent_calls_up_to_the_batch_size(detector: Detector) -> None:
    tensors = [detector.prepare(image, f"image {i}")[0] for i, image in enumerate(IMAGES)]
    batcher = DynamicBatcher(detector, max_batch_size=8, max_wait_ms=200)

    async def all_at_once() -> list[float]:
        return [s.p_fake for s in await asyncio.gather(*(batcher.score(t) for t in tensors))]

    scores = asyncio.run(all_at_once())
    assert batcher.batch_sizes == [8, 4]
    expected = [p.p_fake for p in detector.predict(IMAGES)]
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_a_lone_request_waits_at_most_the_batch_window(detector: Detector) -> None:
    tensor = detector.prepare(IMAGES[0], "one")[0]
    batcher = DynamicBatcher(detector, max_batch_size=16, max_wait_ms=1)
    asyncio.run(batcher.score(tensor))
    assert batcher.batch_sizes == [1]


@pytest.mark.parametrize("max_batch_size", [1, 16])
def test_concurrent_requests_get_their_own_scores(detector: Detector, max_batch_size: int) -> None:
    app = create_app(detector, ServiceSettings(max_batch_size=max_batch_size, batch_wait_ms=100))

    async def clients() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            posts = [
                client.post("/v1/predict", files={"file": (f"{i}.png", d)}) for i, d in enumerate(IMAGES)
            ]
            return await asyncio.gather(*posts)

    responses = asyncio.run(clients())
    expected = [p.p_fake for p in detector.predict(IMAGES)]
    assert [r.json()["filename"] for r in responses] == [f"{i}.png" for i in range(len(IMAGES))]
    np.testing.assert_allclose([r.json()["p_fake"] for r in responses], expected, atol=1e-6)
    batcher = app.state.scorer.batcher
    if max_batch_size == 1:
        assert batcher is None  # the serial path: one request at a time through one lock
    else:
        assert sum(batcher.batch_sizes) == len(IMAGES) and max(batcher.batch_sizes) > 1


def _png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


@pytest.mark.parametrize("max_batch_size", [1, 16])
def test_explain_returns_the_scored_crop_and_an_overlay(detector: Detector, max_batch_size: int) -> None:
    client = TestClient(create_app(detector, ServiceSettings(max_batch_size=max_batch_size)))
    body = client.post("/v1/predict?explain=true", files={"file": ("x.png", IMAGES[0])}).json()
    plain = client.post("/v1/predict", files={"file": ("x.png", IMAGES[0])}).json()
    assert body["p_fake"] == pytest.approx(plain["p_fake"]) and "explanation" not in plain
    crop, overlay = _png(body["explanation"]["crop"]), _png(body["explanation"]["overlay"])
    size = detector.bundle.preprocessing["image_size"]
    assert crop.shape == overlay.shape == (size, size, 3)
    assert body["explanation"]["method"] == ("attention" if detector.bundle.attention else "gradcam")
    # the crop is the model's input with the normalisation undone: re-preparing it gives the same tensor
    again = detector.transform(crop)
    assert np.abs(again.numpy() - detector.prepare(IMAGES[0], "x")[0][0].numpy()).max() < 0.05
    off = TestClient(create_app(detector, ServiceSettings(explain=False)))
    assert off.post("/v1/predict?explain=true", files={"file": ("x.png", IMAGES[0])}).status_code == 422


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_wait_ms"):
        ServiceSettings(batch_wait_ms=-1)
    with pytest.raises(ValueError, match="body_timeout_s"):
        ServiceSettings(body_timeout_s=0)
    with pytest.raises(ValueError, match="max_batch_size"):
        ServiceSettings(max_batch_size=0)


def test_serve_config_refuses_unknown_keys_and_checks_types() -> None:
    """The service's settings go through the config schema: an unknown key (a typo a config file or `+key=`
    can bring in) is named with the nearest known one instead of being dropped; types are strict."""
    from omegaconf import OmegaConf

    from deepfake_lightning.serve import settings_from_config
    from deepfake_lightning.utils.config_schema import ConfigError

    base = {"ckpt_path": "m.ckpt", "host": "127.0.0.1", "port": 8000, "max_upload_bytes": 1000}
    assert settings_from_config(OmegaConf.create(base)).max_upload_bytes == 1000
    with pytest.raises(ConfigError, match=r"max_upload_byte=5: unknown key; did you mean max_upload_bytes\?"):
        settings_from_config(OmegaConf.create({**base, "max_upload_byte": 5}))
    with pytest.raises(ConfigError, match="explain='yes': expected true or false"):
        settings_from_config(OmegaConf.create({**base, "explain": "yes"}))


def test_gradcam_overlay_for_a_model_without_an_attention_map(detector: Detector) -> None:
    from deepfake_lightning.inference import explain

    tensor = detector.prepare(IMAGES[0], "x")[0][0][0]  # first preprocessing, first (only) region
    assert explain.can_gradcam(detector)
    cam = explain.gradcam(detector, tensor, predicted=1)
    assert cam.shape == tuple(tensor.shape[1:]) and 0.0 <= cam.min() and cam.max() <= 1.0
    record = explain.explanation(detector, tensor, None, cam)
    assert record["method"] == "gradcam" and _png(record["overlay"]).shape == (*cam.shape, 3)
    none = explain.explanation(detector, tensor, None, None)
    assert "overlay" not in none and none["method"].startswith("none")
