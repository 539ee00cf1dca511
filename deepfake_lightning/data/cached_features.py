"""Training on cached frozen features (`feature_cache.enabled=true`, conf/feature_cache/default.yaml).

With `model.backbone.tune=frozen` or `last_k` the frozen start of the network (models/cached_forward.py) is run
once per image and stored (data/feature_cache.py); the training and validation loaders of `trainer.fit` then yield
`{"features", "target", "path"}` batches and a step runs only the trainable rest. The test split, calibration,
eval, export and serving never read the cache: they run the full network from the checkpoint, so the cache can
speed training up but never changes a reported result.

Augmentation. `feature_cache.views=0` (default): training features come from the deterministic eval transform, so
the encoder sees no augmentation (the usual linear-probe practice); `data.augment` is not applied. `views=N`: N
augmented views per training image are computed once (`data.augment` with a seed from `views_seed`, the image's
hash and the view number) and each epoch takes one per image, drawn from (seed, epoch) like the live loader's
augmentations. The cost is N encoder forwards per training image, once, against one forward per image per epoch
when augmenting live (`feature_cache.enabled=false`). Validation always uses the eval transform.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from deepfake_lightning.data.dataset import collate_skipping
from deepfake_lightning.data.feature_cache import FeatureStore
from deepfake_lightning.data.index import Sample
from deepfake_lightning.models.cached_forward import CachePoint, cache_point, frozen_forward, frozen_state
from deepfake_lightning.utils.config_schema import ConfigError, FeatureCacheSettings
from deepfake_lightning.utils.hashing import sha256_file

log = logging.getLogger(__name__)
SHARD_BYTES = 128 << 20  # values written per shard: an interrupted build loses at most this much work
STATS_FILE = "feature_cache.json"


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and values: the encoder's identity, random initialisations included."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encoder_key(net: torch.nn.Module, point: CachePoint) -> dict[str, Any]:
    """What the frozen start computes: architecture, the frozen tensors, the cut, and the library versions."""
    # lazy: timm costs more than torch to import (-X importtime); train imports this module for every run
    import timm

    backbone = net.backbone
    return {
        "backbone": str(getattr(backbone, "model_name", None) or "mobilenet_v2"),
        "architecture_sha256": hashlib.sha256(repr(backbone.features).encode()).hexdigest(),
        "frozen_state_sha256": tensors_sha256(frozen_state(net, point)),
        "cut": point.describe(),
        "torch": torch.__version__.split("+")[0],
        "timm": timm.__version__,
    }


def view_seed(views_seed: int, image_sha256: str, view: int) -> int:
    """The augmentation seed of one cached view: independent of split, order and run seed."""
    return int(hashlib.sha256(f"{views_seed}:{image_sha256}:{view}".encode()).hexdigest()[:8], 16)


class _Jobs(Dataset):
    """(sample index, augmentation seed or None, entry) -> the image dataset's item, tagged with its entry."""

    def __init__(self, images: Dataset, jobs: Sequence[tuple[int, int | None, str]]) -> None:
        self.images, self.jobs = images, list(jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, seed, entry = self.jobs[i]
        item = self.images[index] if seed is None else self.images[(index, seed)]
        return item if "skipped" in item else {**item, "entry": entry}


class CachedFeatureDataset(Dataset):
    """Items `{"features", "target", "path"}`; with several views per sample, the sampler's per-sample seed (from
    (seed, epoch), data/epoch_sampler.py) picks the view."""

    def __init__(
        self, store: FeatureStore, samples: Sequence[Sample], entries: Sequence[Sequence[str]]
    ) -> None:
        self.store, self.samples, self.entries = store, list(samples), [list(e) for e in entries]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        entries = self.entries[index]
        entry = entries[0] if seed is None else entries[seed % len(entries)]
        path, target = self.samples[index]
        return {
            "features": torch.from_numpy(self.store.get(entry)),
            "target": torch.tensor(float(target)),
            "path": path,
        }


class FeatureCache:
    """Builds and serves the cached train/valid loaders of one `trainer.fit` (see `serving`)."""

    def __init__(
        self,
        dir: str | Path,  # noqa: A002 - the config key
        views: int = 0,
        views_seed: int = 0,
        batch_size: int | None = None,
        output_dir: str | Path | None = None,
    ) -> None:
        self.root = Path(dir)
        self.views, self.views_seed, self.batch_size = views, views_seed, batch_size
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.datasets: dict[str, CachedFeatureDataset] = {}
        self.stats: dict[str, Any] = {"dir": str(self.root), "views": views, "splits": {}}

    def loader(self, datamodule: Any, split: str) -> DataLoader:
        """The cached loader of `split` (train or valid) for the fitting module, built at the first request."""
        if split not in self.datasets:
            trainer = datamodule.trainer
            if trainer.world_size == 1:
                self.datasets[split] = self.build(datamodule, split, trainer.lightning_module.net)
            else:  # rank 0 computes, the others read its shards
                self.datasets[split] = self.build(
                    datamodule,
                    split,
                    trainer.lightning_module.net,
                    compute=trainer.is_global_zero,
                    barrier=lambda: trainer.strategy.barrier("feature_cache"),
                )
        return datamodule._loader(split, train=split == "train", dataset=self.datasets[split], num_workers=0)

    def build(
        self,
        datamodule: Any,
        split: str,
        net: torch.nn.Module,
        compute: bool = True,
        barrier: Callable[[], None] | None = None,
    ) -> CachedFeatureDataset:
        """Compute what `split` misses (when `compute`), wait at `barrier`, and index its cached features.

        The training augmentations (views) and the ranks' coordination are the only differences between splits
        and processes; `self.stats` records hits, computed entries and skipped images per split."""
        point = cache_point(net)
        if point is None:
            raise ConfigError(
                "feature_cache.enabled=true: model.backbone.tune="
                f"{getattr(net.backbone, 'tune', 'all')} has no frozen part to cache; expected tune=frozen or last_k"
            )
        fakes = getattr(datamodule, "fakes", "dataset")
        if fakes != "dataset":  # the loaders' items are not the index's files (data/self_blend.py)
            raise ConfigError(f"feature_cache.enabled=true: data.fakes={fakes} cannot be cached; train live")
        augmented = split == "train" and self.views > 0
        store = FeatureStore(self.root, self._key(datamodule, net, point, augmented))
        datamodule.setup()
        samples = datamodule.index[split]
        started = time.perf_counter()
        hashes = [_image_sha256(path) for path, _ in samples]
        views = range(self.views) if augmented else [None]
        entries = [[h if v is None else f"{h}:{v}" for v in views] if h else [] for h in hashes]
        jobs = [
            (i, None if v is None else view_seed(self.views_seed, hashes[i], v), name)
            for i, names in enumerate(entries)
            for v, name in zip(views, names, strict=True)
            if name not in store
        ]
        computed, skipped = 0, []
        if jobs and compute:
            images = datamodule._dataset(split, train=augmented)
            computed, skipped = self._fill(store, _Jobs(images, jobs), net, point, datamodule, split)
        if barrier is not None:
            barrier()
            store.refresh()
        kept = [i for i, names in enumerate(entries) if names and all(name in store for name in names)]
        kept_set = set(kept)
        dropped = sorted({samples[i][0] for i in range(len(samples)) if i not in kept_set} | set(skipped))
        if dropped:
            log.warning(
                "feature cache: skipped %d unreadable image(s) in %s: %s", len(dropped), split, dropped[:20]
            )
        self.stats["splits"][split] = {
            "images": len(samples),
            "entries": sum(len(names) for names in entries),
            "hits": sum(len(names) for names in entries) - len(jobs),
            "computed": computed,
            "skipped": dropped,
            "seconds": round(time.perf_counter() - started, 3),
            "store": str(store.dir),
            "entry_shape": list(store.entry_shape() or ()),
        }
        log.info(
            "feature cache %s: %d entries, %d from the cache, %d computed (%s)",
            split,
            self.stats["splits"][split]["entries"],
            self.stats["splits"][split]["hits"],
            computed,
            store.dir,
        )
        self._write_stats()
        return CachedFeatureDataset(store, [samples[i] for i in kept], [entries[i] for i in kept])

    def _key(
        self, datamodule: Any, net: torch.nn.Module, point: CachePoint, augmented: bool
    ) -> dict[str, Any]:
        preprocessing = {
            "image_size": datamodule.image_size,
            "preprocess": datamodule.preprocess,
            "normalize": datamodule.normalize,
            "reencode_jpeg_quality": datamodule.reencode_jpeg_quality,
        }
        view = {"augment": datamodule.augment, "views_seed": self.views_seed} if augmented else None
        return {"encoder": encoder_key(net, point), "preprocessing": preprocessing, "view": view}

    def _fill(
        self,
        store: FeatureStore,
        jobs: _Jobs,
        net: torch.nn.Module,
        point: CachePoint,
        datamodule: Any,
        split: str,
    ) -> tuple[int, list[str]]:
        """Run the frozen start over the missing entries, writing a shard every `SHARD_BYTES`."""
        loader = DataLoader(
            jobs,
            batch_size=self.batch_size or datamodule.batch_size,
            num_workers=datamodule.num_workers,
            collate_fn=collate_skipping,
        )
        device = next(net.parameters()).device
        was_training = net.training
        net.eval()
        names: list[str] = []
        values: list[np.ndarray] = []
        computed, skipped, started = 0, [], time.perf_counter()
        try:
            for batch in loader:
                skipped.extend(batch["skipped"])
                if not batch["path"]:
                    continue
                images = batch["image"].to(device)
                if datamodule.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    out = frozen_forward(net, point, images).float().cpu().numpy()
                names.extend(batch["entry"])
                values.append(out)
                computed += len(out)
                if sum(v.nbytes for v in values) >= SHARD_BYTES:
                    store.add(names, np.concatenate(values))
                    names, values = [], []
                    rate = computed / max(time.perf_counter() - started, 1e-9)
                    log.info(
                        "feature cache %s: %d/%d computed (%.1f img/s)", split, computed, len(jobs), rate
                    )
            if names:
                store.add(names, np.concatenate(values))
        finally:
            net.train(was_training)
        return computed, skipped

    def _write_stats(self) -> None:
        if self.output_dir is not None and self.output_dir.is_dir():
            (self.output_dir / STATS_FILE).write_text(json.dumps(self.stats, indent=2))


def _image_sha256(path: str) -> str | None:
    """The file's SHA-256; None when it cannot be read (the image is then skipped, counted and logged)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def feature_cache_from_config(cfg: Any, output_dir: str | Path | None = None) -> FeatureCache | None:
    """The `feature_cache` node -> a `FeatureCache`, or None when it is disabled or absent."""
    node = OmegaConf.select(cfg, "feature_cache", default=None)
    if node is None:
        return None
    settings = FeatureCacheSettings.check(node)
    if not settings.enabled:
        return None
    return FeatureCache(settings.dir, settings.views, settings.views_seed, settings.batch_size, output_dir)


@contextmanager
def serving(datamodule: Any, cache: FeatureCache | None):
    """Inside the block (`trainer.fit`), the data module's train and valid loaders come from `cache`."""
    if cache is None:
        yield
        return
    datamodule.feature_cache = cache
    try:
        yield
    finally:
        datamodule.feature_cache = None
