"""`python -m deepfake_lightning.bench tasks=[stream]` at smoke size: folder and shard rows over the same set."""

from __future__ import annotations

import json
from pathlib import Path

from deepfake_lightning.bench.report import validate_rows
from tests.test_streaming import run_module


def test_stream_bench_times_folder_and_shards_of_one_set(tmp_path: Path) -> None:
    proc = run_module(
        "deepfake_lightning.bench",
        "smoke=true",
        "tasks=[stream]",
        "profile.enabled=false",
        "threads=1",
        f"output_dir={tmp_path}",
        f"cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert not validate_rows(rows)
    assert [(r["task"], r["backend"]) for r in rows] == [
        ("stream", "baseline:folder"),
        ("stream", "litdata_shards"),
    ]
    for row in rows:
        extra = row["extra"]
        assert extra["train_images"] == 24  # 12 per class: the same training split on both sides
        assert extra["batches_timed"] == 5  # 6 batches of 4, the first timed apart
        assert 0 < extra["first_batch_s"] <= extra["time_to_first_batch_s"]
        assert row["throughput_img_s"] > 0 and extra["on_disk_mb"] > 0
    assert rows[1]["ratio_to_baseline"] is not None
    assert "litdata_shards" in (tmp_path / "bench.md").read_text()
