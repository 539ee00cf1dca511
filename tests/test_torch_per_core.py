"""PyTorch per-core scoring (`TorchBackend.per_core`, serve's `torch_replicas`): same answers, only when batching."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from deepfake_lightning.inference import Detector
from deepfake_lightning.utils.config_validation import ConfigError
from tests.fixtures_inference import IMAGE_SIZE, compose_entry

pytest_plugins = ("tests.fixtures_inference",)


def test_per_core_slices_give_the_scores_and_maps_of_one_model(tiny_ckpt: Path) -> None:
    backend = Detector.load(tiny_ckpt, backend="torch").backend
    batch = torch.randn(5, 3, IMAGE_SIZE, IMAGE_SIZE)
    logits, amap = backend(batch)
    threads = torch.get_num_threads()
    assert backend.per_core(2) is backend and len(backend.replicas) == 2  # 2 even on a 1-core machine
    split_logits, split_amap = backend(batch)  # slices of 3 and 2 on two copies, one thread each
    np.testing.assert_allclose(split_logits, logits, rtol=1e-5, atol=1e-6)
    assert (amap is None) == (split_amap is None) == (not backend.has_attention)
    if amap is not None:
        assert split_amap.shape == amap.shape  # each slice's own map, in batch order
        np.testing.assert_allclose(split_amap, amap, rtol=1e-5, atol=1e-6)
    one_logits, _ = backend(batch[:1])  # one image: on the calling thread, every core
    np.testing.assert_allclose(one_logits, logits[:1], rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == threads  # the slices' one-thread setting stays in their threads
    backend.per_core(1)
    assert len(backend.replicas) == 1 and backend._pool is None
    np.testing.assert_allclose(backend(batch)[0], logits, rtol=1e-5, atol=1e-6)


def _served_detector(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str]
) -> Any:
    import uvicorn

    from deepfake_lightning import serve as serve_module

    built: list[Any] = []
    real_create_app = serve_module.create_app
    monkeypatch.setattr(serve_module, "create_app", lambda d, s: built.append(d) or real_create_app(d, s))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    monkeypatch.delenv("DEEPFAKE_API_KEY", raising=False)
    cfg = compose_entry("serve", [f"ckpt_path={tiny_ckpt}", "backend=torch", *overrides], tmp_path / "serve")
    serve_module.serve(cfg)
    return built[-1]


def test_serve_splits_torch_batches_per_core_only_when_batching(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = _served_detector(tiny_ckpt, tmp_path, monkeypatch, [])  # max_batch_size=16, torch_replicas=0
    assert len(batched.backend.replicas) == (os.cpu_count() or 1)
    two = _served_detector(tiny_ckpt, tmp_path, monkeypatch, ["torch_replicas=2"])
    assert len(two.backend.replicas) == 2
    one = _served_detector(tiny_ckpt, tmp_path, monkeypatch, ["torch_replicas=1"])
    assert len(one.backend.replicas) == 1
    serial = _served_detector(tiny_ckpt, tmp_path, monkeypatch, ["max_batch_size=1", "torch_replicas=2"])
    assert len(serial.backend.replicas) == 1  # the serial service keeps every core for its one image
    for bad in ("-1", "two", "true"):
        with pytest.raises(ConfigError, match="torch_replicas"):
            _served_detector(tiny_ckpt, tmp_path, monkeypatch, [f"torch_replicas={bad}"])
