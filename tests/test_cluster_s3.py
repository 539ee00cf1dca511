"""`data=streaming data.uri=s3://...` against a real S3 server (`pytest -m cluster`): Ceph's RADOS Gateway, started by
`tests.s3_engine` (deploy/s3/start-local-rgw.sh). Shards written by the project are uploaded to a bucket, and the
real training command streams one epoch from it with the keys in the environment only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deepfake_lightning.data import DeepfakeDataModule
from deepfake_lightning.data.shard_writer import write_shards
from tests.s3_engine import S3Server
from tests.sweep_helpers import run_train
from tests.test_data_groups import grouped_tree

pytest_plugins = ("tests.s3_engine",)
pytestmark = pytest.mark.cluster
BUCKET = "dfl-shards"


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_one_epoch_streams_from_a_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    """32 training images in several chunks, two loader workers: the epoch trains each image exactly once, and the
    test split read from the bucket is predicted in full; the secret key is in no run file and no output."""
    root = grouped_tree(tmp_path / "faces", n_groups=20)
    folder = DeepfakeDataModule(root=str(root), layout="folder", group_by="source_video", num_workers=0)
    folder.setup()
    assert folder.index is not None
    write_shards(folder.index, folder.groups, root, tmp_path / "shards", chunk_bytes="5KB", num_workers=1)
    assert s3_server.upload(tmp_path / "shards", BUCKET, "faces") > 3

    run = tmp_path / "run"
    proc = run_train(
        "data=streaming",
        f"data.uri=s3://{BUCKET}/faces",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=2",
        "data.batch_size=4",
        "data.image_size=32",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "calibration.enabled=false",
        "~callbacks.rich_progress_bar",
        "+trainer.enable_progress_bar=false",
        "+callbacks.ids._target_=tests.stream_ids.RecordSampleIds",
        f"+callbacks.ids.path={tmp_path / 'ids'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={run}",
        env=s3_server.env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    relative = {
        split: sorted(Path(p).relative_to(root).as_posix() for p, _ in folder.index[split])
        for split in folder.index
    }
    seen = json.loads((tmp_path / "ids" / "rank0.json").read_text())
    assert (
        sorted(p for _, _, paths in seen["train"] for p in paths) == relative["train"]
    )  # 8 batches, each once
    with (run / "predictions.csv").open() as handle:
        assert sorted(row["path"] for row in csv.DictReader(handle)) == relative["test"]
    assert s3_server.secret_key not in proc.stdout
    assert not _files_holding(run, s3_server.secret_key)
    assert not _files_holding(tmp_path / "logs", s3_server.secret_key)
