"""Streaming shards: `python -m deepfake_lightning.data.shard` writes a folder set as LitData shards, `data=streaming`
trains from them with the folder's images, labels, split and transforms, split between DDP ranks, resumable."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from litdata import StreamingDataset

from deepfake_lightning.data import DatasetLayoutError, DeepfakeDataModule
from deepfake_lightning.data.dataset import ImageDataset
from deepfake_lightning.data.epoch_sampler import sample_seed
from deepfake_lightning.data.index import SPLITS, describe
from deepfake_lightning.data.shard import shard
from deepfake_lightning.data.shard_format import split_uri
from deepfake_lightning.data.streaming_datamodule import StreamingDataModule
from deepfake_lightning.train import train
from deepfake_lightning.utils.config_validation import ConfigError, validate_config
from tests.conftest import REPO_ROOT
from tests.stream_ids import Interrupted, RecordSampleIds, StopMidEpoch
from tests.sweep_helpers import run_train
from tests.test_data_groups import grouped_tree

HANG_TIMEOUT_S = 300  # a rank left waiting in a collective fails the test instead of blocking CI
GROUP = "source_video"


def _folder(root: Path) -> DeepfakeDataModule:
    """The folder data module the shards are written from (20 groups: 16/2/2 split, 32/4/4 images)."""
    return DeepfakeDataModule(
        root=str(root), layout="folder", group_by=GROUP, image_size=32, batch_size=4, num_workers=0
    )


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A grouped folder and its shards, written by the command exactly as a user types it (2 KB chunks: several
    per split, so ranks and workers get different chunks)."""
    base = tmp_path_factory.mktemp("streaming")
    root = grouped_tree(base / "faces", n_groups=20)
    out = base / "shards"
    proc = run_module(
        "deepfake_lightning.data.shard",
        "data=folder",
        f"data.root={root}",
        f"data.group_by={GROUP}",
        f"out={out}",
        "chunk_bytes=2KB",
        "num_workers=2",
        f"paths.log_dir={base / 'logs'}",
        f"hydra.run.dir={base / 'shard_run'}",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return root, out


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` as a user types it; stdout and stderr together."""
    env = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _relative(root: Path, path: str) -> str:
    return Path(path).relative_to(root).as_posix()


# --- what the shards hold ------------------------------------------------------------------------------------


def test_shards_hold_the_folder_split_its_file_bytes_labels_and_groups(sharded: tuple[Path, Path]) -> None:
    root, out = sharded
    folder = _folder(root)
    folder.setup()
    assert folder.index is not None
    for split in SPLITS:
        expected = {
            _relative(root, path): (_sha(Path(path).read_bytes()), target, folder.groups[path])
            for path, target in folder.index[split]
        }
        stored = StreamingDataset(split_uri(out, split))
        items = [stored[i] for i in range(len(stored))]
        assert [item["id"] for item in items] == list(range(len(expected)))  # position = id
        got = {item["path"]: (_sha(bytes(item["image"])), item["label"], item["group"]) for item in items}
        assert got == expected, split
    meta = json.loads((out / "shards.json").read_text())
    assert (
        meta["counts"]
        == describe(folder.index)
        == {s: {"real": n, "fake": n} for s, n in zip(SPLITS, (16, 2, 2), strict=True)}
    )
    with (out / "splits.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["path"], r["split"], r["label"], r["group"]) for r in rows} == {
        (_relative(root, p), split, str(t), folder.groups[p])
        for split in SPLITS
        for p, t in folder.index[split]
    }


def test_streaming_module_yields_the_folder_images_through_the_same_transforms(
    sharded: tuple[Path, Path],
) -> None:
    """Eval splits: pixel-identical tensors to the folder's; train: every image once per epoch, each augmented
    exactly as the folder's dataset augments it with the same per-sample seed."""
    root, out = sharded
    folder, streamed = (
        _folder(root),
        StreamingDataModule(uri=str(out), image_size=32, batch_size=4, num_workers=0),
    )
    assert streamed.counts() == folder.counts()
    for split in ("valid", "test"):
        reference = {
            _relative(root, path): item
            for path, item in (
                (p, folder._dataset(split, False)[k]) for k, (p, _) in enumerate(folder.index[split])
            )
        }
        seen = {}
        for batch in streamed._loader(split, train=False):
            for path, image, target in zip(batch["path"], batch["image"], batch["target"], strict=True):
                seen[path] = (image, target)
        assert set(seen) == set(reference)
        for path, (image, target) in seen.items():
            assert torch.equal(image, reference[path]["image"]) and target == reference[path]["target"], path

    loader = streamed._loader("train", train=True)
    ids = {row[0]: k for k, row in enumerate(streamed.index["train"])}
    train_folder = ImageDataset(
        [(str(root / p), t) for p, t in streamed.index["train"]], folder.image_transform(train=True)
    )
    seed = loader.dataset.seed
    paths = []
    for batch in loader:
        for path, image in zip(batch["path"], batch["image"], strict=True):
            expected = train_folder[(ids[path], sample_seed(seed, 0, ids[path]))]
            assert torch.equal(image, expected["image"]), path
            paths.append(path)
    assert sorted(paths) == sorted(ids)  # 32 images in 8 full batches: every one exactly once


def test_shard_takes_a_splits_csv_and_refuses_to_overwrite_unasked(
    sharded: tuple[Path, Path], compose_cfg, tmp_path: Path
) -> None:
    root, _ = sharded
    folder = _folder(root)
    manifest = folder.write_split_manifest(tmp_path / "splits.csv")
    rows = list(csv.DictReader(manifest.open()))
    moved = next(r for r in rows if r["split"] == "train")
    moved["split"] = "test"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "shards"
    overrides = ["data=folder", f"data.root={root}", f"out={out}", f"splits={manifest}", "num_workers=1"]
    meta = shard(compose_cfg("shard", overrides))
    assert sum(meta["counts"]["train"].values()) == 31 and sum(meta["counts"]["test"].values()) == 5
    test_paths = {item["path"] for item in StreamingDataset(split_uri(out, "test"))}
    assert _relative(root, moved["path"]) in test_paths

    with pytest.raises(DatasetLayoutError, match="already holds shards.*overwrite=true"):
        shard(compose_cfg("shard", overrides))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetLayoutError, match="not empty and holds no shards"):
        shard(compose_cfg("shard", [*overrides[:2], f"out={tmp_path / 'other'}"]))
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "override,message",
    [
        ("+data.group_by=source_video", "data.group_by='source_video': unknown key"),  # the shards are split
        ("data.persistent_workers=true", "data.persistent_workers=True: expected false"),
        ("data.fakes=self_blend", "data.fakes='self_blend': expected dataset"),
    ],
)
def test_streaming_config_refuses_what_shards_fix(sharded, compose_cfg, override: str, message: str) -> None:
    _, out = sharded
    cfg = compose_cfg("train", ["data=streaming", f"data.uri={out}", override])
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_streaming_config_names_a_folder_without_shards(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["data=streaming", f"data.uri={tmp_path}"])
    with pytest.raises(ConfigError, match=r"data.uri=.*no shards.json there; expected a folder written by"):
        validate_config(cfg)


# --- training from shards ------------------------------------------------------------------------------------


def test_debug_fdr_trains_from_shards(sharded: tuple[Path, Path], compose_cfg) -> None:
    _, out = sharded
    cfg = compose_cfg("train", ["data=streaming", f"data.uri={out}", "debug=fdr", "data.image_size=40"])
    results = train(cfg)
    assert results["status"] == "ok"
    assert results["test"]["n"] == 4  # fast_dev_run: one batch of 4 test images


def test_ddp_ranks_stream_disjoint_shards_that_cover_the_training_set(sharded, tmp_path: Path) -> None:
    """Two gloo ranks: LitData deals each its own chunks (4 batches of 4 each), together every training image
    once; validation and test are split by Lightning's sampler and the gathered predictions hold each test image."""
    root, out = sharded
    proc = run_train(
        "data=streaming",
        f"data.uri={out}",
        "trainer=ddp_cpu",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "~callbacks.rich_progress_bar",
        "+trainer.enable_progress_bar=false",
        "data.num_workers=0",
        "data.batch_size=4",
        "data.image_size=40",
        "calibration.enabled=false",
        "+callbacks.ids._target_=tests.stream_ids.RecordSampleIds",
        f"+callbacks.ids.path={tmp_path / 'ids'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    ranks = [json.loads((tmp_path / "ids" / f"rank{r}.json").read_text()) for r in (0, 1)]
    train_paths = [[p for _, _, paths in rank["train"] for p in paths] for rank in ranks]
    assert [len(paths) for paths in train_paths] == [16, 16]
    assert not set(train_paths[0]) & set(train_paths[1])
    folder = _folder(root)
    folder.setup()
    assert set(train_paths[0]) | set(train_paths[1]) == {_relative(root, p) for p, _ in folder.index["train"]}
    valid = {p for rank in ranks for _, _, paths in rank["valid"] for p in paths}
    assert valid == {_relative(root, p) for p, _ in folder.index["valid"]}
    with (tmp_path / "run" / "predictions.csv").open() as handle:
        predicted = sorted(row["path"] for row in csv.DictReader(handle))
    assert predicted == sorted(_relative(root, p) for p, _ in folder.index["test"])


def _fit(cfg, logs: Path, *callbacks: L.Callback, ckpt_path: str | None = None) -> list[list]:  # noqa: ANN001
    """Two epochs of 6 training batches (of 8 in the split), a checkpoint every 3 steps; the batches it trained."""
    L.seed_everything(0, workers=True)
    record = RecordSampleIds(str(logs / "ids"))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=6,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            record,
            ModelCheckpoint(dirpath=logs, filename="{step}", every_n_train_steps=3, save_top_k=-1),
            *callbacks,
        ],
    )
    module = instantiate(cfg.model, _recursive_=False)
    try:
        trainer.fit(module, datamodule=instantiate(cfg.data), ckpt_path=ckpt_path, weights_only=True)
    except Interrupted:
        pass
    return record.seen["train"]


def test_a_resumed_epoch_continues_without_repeating_or_skipping_samples(
    sharded, compose_cfg, tmp_path: Path
) -> None:
    """Stopped at batch 4 of epoch 1 (two workers streaming), resumed from the checkpoint of step 9 (epoch 1,
    batch 2): the resumed run trains batches 3-5 of epoch 1 exactly as the uninterrupted run did. Resumed from the
    step-6 checkpoint (the end of epoch 0, cut short by limit_train_batches), it trains epoch 1 from its start."""
    _, out = sharded
    cfg = compose_cfg(
        "train", ["data=streaming", f"data.uri={out}", "data.num_workers=2", "data.image_size=32"]
    )
    straight = _fit(cfg, tmp_path / "straight")
    assert [(epoch, batch) for epoch, batch, _ in straight] == [(e, b) for e in (0, 1) for b in range(6)]
    assert len({p for _, _, paths in straight[:6] for p in paths}) == 24  # no repeat within an epoch
    assert [paths for _, _, paths in straight[:6]] != [paths for _, _, paths in straight[6:]]  # reshuffled

    stopped = _fit(cfg, tmp_path / "stopped", StopMidEpoch(epoch=1, batch=4))
    assert stopped == straight[:11]  # the same run up to the stop (batch 4 of epoch 1 started, then stopped)

    resumed = _fit(cfg, tmp_path / "resumed", ckpt_path=str(tmp_path / "stopped" / "step=9.ckpt"))
    assert resumed == straight[9:]

    from_epoch_end = _fit(
        cfg, tmp_path / "from_epoch_end", ckpt_path=str(tmp_path / "stopped" / "step=6.ckpt")
    )
    assert from_epoch_end == straight[6:]
