"""The service under load (slow: the real server, 64 clients, 2,000 requests), and the load tool's parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepfake_lightning.bench.loadtest import (
    Outcome,
    _comparison,
    make_payloads,
    model_only_throughput,
    percentile,
    run_load_test,
    schedule,
    summarize,
)
from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.service import create_app

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt shared fixture


def test_each_payload_gets_the_status_the_tool_expects(tiny_ckpt: Path) -> None:
    client = TestClient(create_app(Detector.load(tiny_ckpt)))
    payloads = make_payloads(image_size=96)
    assert sum(p.valid for p in payloads) == 6 and sum(not p.valid for p in payloads) == 6
    for payload in payloads:
        response = client.post("/v1/predict", files={"file": (payload.name, payload.data)})
        assert response.status_code in payload.expected, (payload.name, response.text)


def test_schedule_mixes_invalid_requests_at_the_asked_fraction() -> None:
    payloads = make_payloads(image_size=64)
    order = schedule(payloads, 2000, 0.25, seed=0)
    invalid = sum(not payloads[i].valid for i in order)
    assert len(order) == 2000 and 400 < invalid < 600
    assert {payloads[i].name for i in order} == {p.name for p in payloads}  # every kind is sent
    assert schedule(payloads, 2000, 0.25, seed=0) == order


def test_summary_counts_and_nearest_rank_percentiles() -> None:
    payloads = make_payloads(image_size=64)
    good, bomb = 0, next(i for i, p in enumerate(payloads) if p.name == "bomb.png")
    outcomes = [Outcome(good, s / 1000, 200, probability=True) for s in range(1, 101)]
    outcomes += [
        Outcome(bomb, 0.001, 413),
        Outcome(good, 0.5, 500),
        Outcome(good, 1.0, error="connection"),
        None,
    ]
    summary = summarize(outcomes, payloads, seconds=2.0)
    assert summary["statuses"] == {"200": 100, "413": 1, "500": 1}
    assert (summary["server_errors"], summary["connection_errors"], summary["unfinished"]) == (1, 1, 1)
    assert summary["valid_without_probability"] == 2 and summary["unexpected_status"] == 1
    assert summary["latency_ms"]["p50"] == 50.0 and summary["latency_ms"]["max"] == 500.0
    assert summary["throughput_rps"] == 51.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0


def test_model_only_rate_and_the_side_by_side_comparison(tiny_ckpt: Path) -> None:
    payloads = make_payloads(image_size=64)
    rate = model_only_throughput(str(tiny_ckpt), "auto", 4, payloads, seconds=0.2)
    assert rate["backend"] == "torch" and rate["batch_size"] == 4 and rate["calls"] >= 3
    assert rate["images_per_s"] > 0
    good = [Outcome(0, 0.01, 200, probability=True)] * 30
    serial, batched = summarize(good, payloads, 3.0), summarize(good, payloads, 1.0)
    table = _comparison({"serial": {"run": serial}, "run": batched, "model_only": {"images_per_s": 60.0}})
    assert (table["serial_rps"], table["batched_rps"], table["batched_vs_serial"]) == (10.0, 30.0, 3.0)
    assert table["batched_vs_model_only"] == 0.5 and table["errors_on_valid_requests"] == 0


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of ckpt_path"):
        run_load_test()
    with pytest.raises(ValueError, match="unknown option"):
        run_load_test(url="http://127.0.0.1:1", clients=3)
    with pytest.raises(ValueError, match="max_batch_size"):
        run_load_test(url="http://127.0.0.1:1", max_batch_size=0)


@pytest.mark.slow
def test_service_under_load(tiny_ckpt: Path) -> None:
    """64 concurrent clients, 2,000 requests (about a quarter invalid) against `python -m
    deepfake_lightning.serve` on loopback: no 5xx, no connection error, every valid image scored, bounded
    memory. Latency and throughput are printed, not asserted (the machine is shared)."""
    summary = run_load_test(ckpt_path=str(tiny_ckpt), requests=2000, concurrency=64, max_seconds=900)
    print(json.dumps(summary, indent=2))
    run = summary["run"]
    assert run["finished"] == 2000 and run["unfinished"] == 0
    assert run["server_errors"] == 0 and run["connection_errors"] == 0 and run["timeouts"] == 0
    assert run["unexpected_status"] == 0 and run["valid_without_probability"] == 0
    assert 0 < run["valid_requests"] < 2000 and sum(run["statuses"].values()) == 2000
    assert summary["memory"]["rss_after_run_mb"] <= 2 * summary["memory"]["rss_after_warmup_mb"]
