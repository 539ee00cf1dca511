"""`predict ... trainer=ddp_cpu`: Lightning's trainer.predict on 2 gloo processes, shards merged on rank 0."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_lightning.predict import predict
from deepfake_lightning.prediction.distributed import merge_rows, merge_shard_files
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import compose_entry, face_like_image, save_image

pytest_plugins = ("tests.fixtures_inference",)


def _run_group(command: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run the launcher in its own process group, so a timeout also ends the rank it started."""
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_merge_restores_input_order_and_drops_padding() -> None:
    # DistributedSampler over 5 items and 2 ranks pads rank 1 with item 0: rank 0 = 0, 2, 4; rank 1 = 1, 3, 0
    rank0 = [{"index": i, "path": f"f{i}"} for i in (0, 2, 4)]
    rank1 = [{"index": i, "path": f"f{i}"} for i in (1, 3)]
    padded = rank1 + [{"index": 0, "path": "f0"}]
    merged = list(merge_rows([iter(rank0), iter(sorted(padded, key=lambda r: r["index"]))]))
    assert [r["index"] for r in merged] == [0, 1, 2, 3, 4]
    assert [r["path"] for r in merged] == ["f0", "f1", "f2", "f3", "f4"]


def test_merge_refuses_a_missing_shard(tmp_path: Path) -> None:
    shard = tmp_path / "rank_00000.jsonl"
    rows = [{"index": i, "path": f"f{i}", "p_fake": 0.5, "label": "fake", "error": ""} for i in (0, 2)]
    shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RuntimeError, match=r"merged 2 rows from 1 shard\(s\), expected 3"):
        merge_shard_files([shard], tmp_path / "out.csv", ["path", "p_fake", "label", "error"], expected=3)


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """7 files (odd: 4 on rank 0, 3 on rank 1), one unreadable, sizes differ so scores differ."""
    folder = tmp_path / "odd"
    for i in range(6):
        save_image(folder / f"img_{i}.png", face_like_image(10 + i, size=64 + 4 * i))
    (folder / "img_2b_broken.jpg").write_bytes(b"not an image")
    return folder


def test_two_gloo_processes_equal_one_process(tiny_ckpt: Path, odd_folder: Path, tmp_path: Path) -> None:
    single = predict(
        compose_entry(
            "predict",
            [f"ckpt_path={tiny_ckpt}", f"input={odd_folder}", "progress=false", f"output={tmp_path}/one.csv"],
            tmp_path / "single",
        )
    )
    out = tmp_path / "ranks.csv"
    command = [
        sys.executable,
        "-m",
        "deepfake_lightning.predict",
        f"ckpt_path={tiny_ckpt}",
        f"input={odd_folder}",
        f"output={out}",
        "trainer=ddp_cpu",
        "batch_size=2",  # 2 batches on rank 0, 2 on rank 1 (the last one holds one file)
        "num_workers=0",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'dist'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    proc = _run_group(command, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    log = (tmp_path / "dist" / "predict.log").read_text()
    assert "merged 2 shard(s)" in log and "7 files in" in log
    one, many = _rows(Path(single["output"])), _rows(out)
    assert len(many) == len(one) == 7
    assert [r["path"] for r in many] == [r["path"] for r in one]
    for a, b in zip(one, many, strict=True):
        assert (a["label"], a["error"]) == (b["label"], b["error"])
        if a["p_fake"]:
            assert float(b["p_fake"]) == pytest.approx(float(a["p_fake"]), abs=1e-5)
        else:
            assert b["p_fake"] == "" and "img_2b_broken.jpg" in b["error"]
    assert not (tmp_path / "ranks.csv.shards").exists()  # merged and removed


def test_slurm_predict_job_runs_one_task_per_device() -> None:
    """`predict -m hydra/launcher=slurm trainer=ddp ...` composes to one SLURM task per rank, like training."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "input=x"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("predict", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.nodes) == (4, 2)
    assert cfg.trainer.strategy._target_ == "deepfake_lightning.distributed.HydraDDPStrategy"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert "trainer" not in compose("predict", overrides=["input=x"])  # the default: one process
