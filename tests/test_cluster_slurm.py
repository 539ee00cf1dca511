"""Training and prediction on a real one-node SLURM cluster (`pytest -m cluster`).

The cluster (munged, slurmctld, slurmd on localhost, proctrack/linuxproc, no cgroups) is started once per
session by `deploy/slurm/start-local-cluster.sh` (`tests.cluster_engines.slurm_cluster`) and stopped at the end.
Jobs inherit this process's environment (sbatch's default), so they run this checkout with the same Python.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepfake_lightning.bundle import open_model, read_checkpoint
from deepfake_lightning.predict import predict
from tests.cluster_engines import SlurmCluster
from tests.conftest import REPO_ROOT, make_folder_tree
from tests.fixtures_inference import compose_entry, face_like_image, save_image
from tests.sweep_helpers import run_train, tiny_synthetic

pytest_plugins = ("tests.cluster_engines", "tests.fixtures_inference")
pytestmark = pytest.mark.cluster
SLURM = ["-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=30"]


def _results(sweep: Path) -> dict[int, object]:
    """submitit's result pickles: job number -> what the Hydra job returned (our own files, from this test)."""
    returns = {}
    for path in sweep.glob(".submitit/**/*_result.pkl"):
        outcome, value = pickle.loads(path.read_bytes())
        assert outcome == "success", value
        returns[value.hydra_cfg.hydra.job.num] = value
    return returns


def test_multirun_submits_one_slurm_job_per_seed(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """`train -m hydra/launcher=slurm +experiment=fast seed=1,2` (one tiny epoch instead of debug=fdr, so each
    job has a validation metric to return): two SLURM jobs run and return it, and the summary holds both. They
    start together on one data dir: the generation lock lets one write the synthetic set and the other reuse it."""
    sweep = tmp_path / "sweep"
    proc = run_train(
        *SLURM,
        *tiny_synthetic(tmp_path),
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        env=slurm_cluster.env(),
        timeout=1500,  # both jobs share 2 busy cores
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert (summary["ok"], summary["failed"], summary["incomplete"]) == (2, 0, 0)
    returns = _results(sweep)
    assert sorted(returns) == [0, 1]
    job_ids = set()
    for job in summary["jobs"]:
        ret = returns[job["job"]]
        assert isinstance(job["metric_value"], float) and ret.return_value == pytest.approx(
            job["metric_value"]
        )
        assert job["test"]["auroc"]["value"] is not None
        job_id = str(ret.hydra_cfg.hydra.job.id)  # set by the launcher from SLURM_JOB_ID
        state = slurm_cluster.job_state(job_id, finished_within=300)
        assert state["JobState"] == "COMPLETED" and state["Partition"] == "local", state
        job_ids.add(job_id)
    assert len(job_ids) == 2
    assert [j["label"] for j in summary["jobs"]] == ["seed=1", "seed=2"]


def _tiny_folder_run(root: Path, logs: Path) -> list[str]:
    """3 epochs of 8 batches on a random 20+20 folder: as the kill -9 test, at 40 px."""
    return [
        "data=folder",
        f"data.root={root}",
        "data.batch_size=4",
        "data.image_size=40",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=3",
        "trainer.log_every_n_steps=1",
        "~callbacks.early_stopping",
        "~callbacks.rich_progress_bar",
        "+trainer.enable_progress_bar=false",
        "calibration.enabled=false",
        f"paths.log_dir={logs}",
    ]


def test_scancel_mid_training_requeues_and_resumes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """`scancel --signal=USR2` (submitit's checkpoint signal, as a preemption sends it) in epoch 1: submitit
    requeues the job, SLURM restarts it in the same job dir, and train resumes from that dir's last.ckpt. It ends
    exactly where an uninterrupted run ends: best score, test metrics, best.ckpt weights, history."""
    root = make_folder_tree(tmp_path / "faces", per_class=20)
    sweep, ready = tmp_path / "sweep", tmp_path / "killed_at"
    kill_point = [
        "+callbacks.kill_point._target_=tests.kill_point.KillPoint",
        f"+callbacks.kill_point.path={ready}",
    ]
    command = [sys.executable, "-m", "deepfake_lightning.train", *SLURM, f"hydra.sweep.dir={sweep}"]
    command += [*_tiny_folder_run(root, tmp_path / "logs"), *kill_point]
    env = {**slurm_cluster.env(), "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    sweeper = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not ready.exists():
            assert sweeper.poll() is None, sweeper.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the job never reached epoch 1, batch 3"
            time.sleep(0.5)
        [job_id] = slurm_cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i").stdout.split()
        assert read_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt")["epoch"] == 0
        cancel = slurm_cluster.run("scancel", "--signal=USR2", job_id)
        assert cancel.returncode == 0, cancel.stderr
        out, _ = sweeper.communicate(
            timeout=900
        )  # SLURM holds a requeued job ~2 minutes before restarting it
    finally:
        if sweeper.poll() is None:
            os.killpg(sweeper.pid, signal.SIGKILL)
            sweeper.communicate()
    assert sweeper.returncode == 0, out[-4000:]
    assert slurm_cluster.job_state(job_id)["Restarts"] == "1"
    run = sweep / "0"
    job_log = (run / "train.log").read_text()
    assert (
        f"SLURM restarted this job (restart 1): resuming from {run / 'checkpoints' / 'last.ckpt'}" in job_log
    )
    history = json.loads((run / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    summary = json.loads((run / "run_summary.json").read_text())
    assert summary["status"] == "ok"
    open_model(run / "checkpoints" / "best.ckpt")

    straight = run_train(
        *_tiny_folder_run(root, tmp_path / "straight_logs"),
        f"hydra.run.dir={tmp_path / 'straight'}",
        timeout=1500,  # as the SLURM job: 3 tiny epochs took over 600 s on 2 cores at load 17
    )
    assert straight.returncode == 0, straight.stdout[-3000:]
    reference = tmp_path / "straight"
    expected = json.loads((reference / "run_summary.json").read_text())
    assert summary["val/auroc"] == expected["val/auroc"]  # the value returned to the sweeper
    for key in ("auroc", "accuracy", "log_loss"):
        assert summary["test"][key]["value"] == expected["test"][key]["value"], key
    ours, theirs = (
        read_checkpoint(run / "checkpoints" / "best.ckpt"),
        read_checkpoint(reference / "checkpoints" / "best.ckpt"),
    )
    assert ours["epoch"] == theirs["epoch"]
    assert all(torch.equal(ours["state_dict"][k], theirs["state_dict"][k]) for k in theirs["state_dict"])
    reference_history = json.loads((reference / "training_history.json").read_text())
    assert [h["val/auroc"] for h in history] == [h["val/auroc"] for h in reference_history]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_runs_as_two_slurm_tasks(
    slurm_cluster: SlurmCluster, tiny_ckpt: Path, tmp_path: Path
) -> None:
    """`sbatch --ntasks-per-node=2` + `srun python -m deepfake_lightning.predict trainer=ddp_cpu`: Lightning takes the
    ranks from SLURM (gloo), each scores its shard, rank 0 merges; the file equals a one-process run."""
    folder = tmp_path / "images"
    for i in range(7):  # odd: 4 files on rank 0, 3 on rank 1
        save_image(folder / f"img_{i}.png", face_like_image(30 + i, size=64 + 4 * i))
    (folder / "img_3b_broken.jpg").write_bytes(b"not an image")
    single = predict(
        compose_entry(
            "predict",
            [f"ckpt_path={tiny_ckpt}", f"input={folder}", "progress=false", f"output={tmp_path}/one.csv"],
            tmp_path / "single",
        )
    )
    out, run_dir = tmp_path / "ranks.csv", tmp_path / "dist"
    predict_cmd = [
        sys.executable,
        "-m",
        "deepfake_lightning.predict",
        f"ckpt_path={tiny_ckpt}",
        f"input={folder}",
        f"output={out}",
        "trainer=ddp_cpu",
        "batch_size=2",
        "num_workers=0",
        "progress=false",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    job = slurm_cluster.run(
        "sbatch",
        "--wait",
        "--nodes=1",
        "--ntasks-per-node=2",  # Lightning refuses --ntasks
        "--cpus-per-task=1",
        "--time=20",
        f"--output={tmp_path / 'job.out'}",
        f"--chdir={REPO_ROOT}",
        "--wrap",
        "srun " + " ".join(predict_cmd),
        timeout=900,
    )
    job_out = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert job.returncode == 0, job.stdout + job.stderr + job_out[-4000:]
    job_id = job.stdout.split()[-1]
    state = slurm_cluster.job_state(job_id)
    assert (state["JobState"], state["NumTasks"]) == ("COMPLETED", "2"), state
    log = (run_dir / "predict.log").read_text()
    assert "merged 2 shard(s)" in log and "8 files in" in log
    one, many = _rows(Path(single["output"])), _rows(out)
    assert len(many) == len(one) == 8
    assert [r["path"] for r in many] == [r["path"] for r in one]
    for a, b in zip(one, many, strict=True):
        assert (a["label"], a["error"]) == (b["label"], b["error"])
        if a["p_fake"]:
            assert float(b["p_fake"]) == pytest.approx(float(a["p_fake"]), abs=1e-5)
        else:
            assert b["p_fake"] == "" and "img_3b_broken.jpg" in b["error"]
