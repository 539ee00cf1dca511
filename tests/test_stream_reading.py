"""How the training stream reads local shards (data/shard_datasets.py `in_place`): in place, every chunk
memory-mapped, with LitData's local-disk profile whatever the mount, so two workers stream every training image
once per epoch, reshuffled each epoch, also where LitData would take the folder for NFS or Lustre."""

from __future__ import annotations

import builtins
from collections import Counter
from pathlib import Path
from typing import Any

import litdata.streaming.dataset
import litdata.streaming.item_loader
import pytest
from litdata.streaming.posix_fast import PosixFastProfile

from deepfake_lightning.data import DeepfakeDataModule
from deepfake_lightning.data.shard_datasets import ITEM_DECODE, ShardStream, in_place
from deepfake_lightning.data.shard_format import split_uri
from deepfake_lightning.data.shard_writer import write_shards
from deepfake_lightning.data.streaming_datamodule import StreamingDataModule
from tests.test_data_groups import grouped_tree


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 training images in 5 KB chunks of about 7: two loader workers split the chunk at the middle between them."""
    base = tmp_path_factory.mktemp("stream_reading")
    root = grouped_tree(base / "faces", n_groups=20)
    folder = DeepfakeDataModule(root=str(root), layout="folder", group_by="source_video", num_workers=0)
    folder.setup()
    assert folder.index is not None
    write_shards(folder.index, folder.groups, root, base / "shards", chunk_bytes="5KB", num_workers=1)
    return base / "shards"


@pytest.mark.parametrize("kind", ["posix", "nfs", "lustre", "vast"])
def test_local_shards_are_read_in_place_with_the_local_disk_profile(kind: str) -> None:
    profile = in_place(PosixFastProfile(kind=kind))
    assert profile is not None and profile.in_place and profile.skip_chunk_delete
    assert not profile.window_shuffle  # no fixed stripe of chunks per worker
    assert in_place(None) is None  # a bucket: chunks downloaded into the cache, as LitData does


def test_the_stream_unpacks_only_the_row_it_reads(shards: Path) -> None:
    stream = ShardStream(split_uri(shards, "train"), lambda image, seed=None: image, seed=0)
    assert stream.batch_decode == ITEM_DECODE == 0
    assert stream.posix_fast is not None and stream.posix_fast.kind == "posix"


def _fail_on_chunk_reread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk file opened more than twice by one reader (loader workers inherit the patch) fails the read: LitData
    reads a chunk it has not memory-mapped whole, once per image."""
    opened: Counter[str] = Counter()

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(".bin"):
            opened[str(file)] += 1
            if opened[str(file)] > 2:
                raise AssertionError(f"{file} opened {opened[str(file)]} times: read again for each image")
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(litdata.streaming.item_loader, "open", counting_open, raising=False)


@pytest.mark.parametrize("mount", ["posix", "nfs"])
def test_two_workers_stream_every_image_once_per_epoch_from_memory_maps(
    shards: Path, monkeypatch: pytest.MonkeyPatch, mount: str
) -> None:
    """`mount`: the filesystem LitData detects; on "nfs" it would switch to its window shuffle."""
    monkeypatch.setattr(
        litdata.streaming.dataset, "detect_posix_fast", lambda *_, **__: PosixFastProfile(kind=mount)
    )
    _fail_on_chunk_reread(monkeypatch)
    module = StreamingDataModule(uri=str(shards), image_size=32, batch_size=4, num_workers=2)
    loader = module.train_dataloader()
    assert module.index is not None
    expected = Counter(path for path, _ in module.index["train"])
    assert sum(expected.values()) == 32
    epochs = [[path for batch in loader for path in batch["path"]] for _ in range(2)]
    for paths in epochs:
        assert Counter(paths) == expected  # 8 full batches: every image exactly once
    assert epochs[0] != epochs[1]  # reshuffled
