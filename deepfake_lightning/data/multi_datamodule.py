"""`data=multi`: several data sets in one data module, each with its own split, scored per source and pooled.

Why: a detector trained on one manipulation type is at chance on the next (experiments/cross_dataset).
Training on several, leaving one out (``held_out``) and updating a trained detector with a new type all need
several sets in one run, each still scored on its own.

Each source is built as the data module it would be alone (`multi_sources.py`), so its train/valid/test split
is exactly the split ``data=folder`` gives it with the same keys. The splits are concatenated source by source;
every image's source is carried into ``splits.csv`` and ``predictions.csv`` (`carried_columns`), and test metrics
are reported per source beside the pooled ones (`report_by`). Training draws from the sources as ``mix`` says
(`source_mix.py`); validation (early stopping, calibration) is the pooled validation splits.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset, Dataset

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.epoch_sampler import EpochSampler, run_seed, training_epoch
from deepfake_lightning.data.index import SPLITS, DatasetLayoutError, Index, Sample
from deepfake_lightning.data.leakage import report_leakage
from deepfake_lightning.data.multi_sources import check_sources, held_out_names, source_nodes
from deepfake_lightning.data.source_mix import MixSampler, draws_per_source, source_shares
from deepfake_lightning.data.split_checks import require_trainable, warn_single_class_splits
from deepfake_lightning.data.split_manifest import write_split_manifest
from deepfake_lightning.utils.config_schema import MultiDataSettings

log = logging.getLogger(__name__)
SOURCE_COLUMN = "source"


class SourceConcat(ConcatDataset):
    """The sources' datasets of one split, end to end; keys may carry an augmentation seed (`EpochSampler`).

    ``samples`` lists them in the same order, as `ImageDataset.samples` does (explanations look images up)."""

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if index < 0:
            index += len(self)
        part = bisect.bisect_right(self.cumulative_sizes, index)
        local = index - (self.cumulative_sizes[part - 1] if part else 0)
        return self.datasets[part][local if seed is None else (local, seed)]

    @property
    def samples(self) -> list[Sample]:
        return [sample for dataset in self.datasets for sample in dataset.samples]


class MultiSourceDataModule(DeepfakeDataModule):
    """``sources``: ``{name: data node}``; the other arguments are those of `DeepfakeDataModule` (no ``root``),
    shared by every source. ``mix``/``epoch_size``: the training draw (`source_mix.py`); ``held_out``: sources that
    serve only their test split (leave-one-dataset-out)."""

    config_schema = MultiDataSettings
    # test metrics per value of these columns, beside the pooled ones (per_group.py)
    report_by = (SOURCE_COLUMN,)

    def __init__(
        self,
        sources: Mapping[str, Any],
        mix: str | Mapping[str, float] = "concat",
        epoch_size: int | None = None,
        held_out: str | list[str] | None = None,
        **shared: Any,
    ) -> None:
        settings = {"sources": sources, "mix": mix, "epoch_size": epoch_size, "held_out": held_out, **shared}
        MultiDataSettings.check(settings)
        check_sources(settings)
        self.source_configs = source_nodes(settings)
        self.held_out = held_out_names(settings)
        shared.setdefault("layout", "folder")
        super().__init__(root=f"sources {'+'.join(self.source_configs)}", **shared)
        self.mix = OmegaConf.to_container(mix) if OmegaConf.is_config(mix) else mix
        self.epoch_size = epoch_size
        self.source_modules: dict[str, DeepfakeDataModule] = {}
        self.source_of: dict[str, str] = {}  # path -> source name

    def _build_children(self) -> dict[str, DeepfakeDataModule]:
        """One data module per source; leakage is checked once over all of them (`setup`), not per source."""
        children = {}
        for name, node in self.source_configs.items():
            child = instantiate(OmegaConf.create({**node, "check_leakage": False}))
            if not isinstance(child, DeepfakeDataModule):
                raise DatasetLayoutError(
                    f"data.sources.{name}._target_={node['_target_']!r}: expected a DeepfakeDataModule (folder, "
                    "faces140k or synthetic data)"
                )
            children[name] = child
        return children

    def build_index(self) -> Index:
        """The sources' splits end to end (held-out sources: test only); each child logs its own counts."""
        self.source_modules = self._build_children()
        index: Index = {split: [] for split in SPLITS}
        for name, child in self.source_modules.items():
            child.setup()
            assert child.index is not None
            for split in SPLITS:
                if split != "test" and name in self.held_out:
                    continue
                index[split] += child.index[split]
            self.groups.update(child.groups)
            self.verify_skipped += child.verify_skipped
            for path in (path for samples in child.index.values() for path, _ in samples):
                other = self.source_of.setdefault(path, name)
                if other != name:
                    raise DatasetLayoutError(
                        f"data.sources: {path} is in sources {other!r} and {name!r}; a file must belong to one "
                        "source (the same root twice?)"
                    )
        if self.held_out:
            log.info("data: held out (test split only): %s", ", ".join(self.held_out))
        return index

    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        index = self.build_index()  # each source verified, counted and group-checked by its own module
        for split, samples in index.items():
            per_source = {name: 0 for name in self.source_modules}
            for path, _ in samples:
                per_source[self.source_of[path]] += 1
            log.info("data %s: %s", split, ", ".join(f"{n} {name}" for name, n in per_source.items()))
        warn_single_class_splits(index, self.root)
        if self.check_leakage:  # across sources too: one file in two sources' splits is a leak
            self.leaks = report_leakage(index, self.root)
        self.index = index

    def _dataset(self, split: str, train: bool) -> Dataset:
        self.setup()
        assert self.index is not None
        require_trainable(self.index[split], split, self.root)
        parts = [
            child._dataset(split, train)
            for name, child in self.source_modules.items()
            if child.index and child.index[split] and (split == "test" or name not in self.held_out)
        ]
        return SourceConcat(parts)

    def training_sizes(self) -> dict[str, int]:
        """Training images per source, in the order of the training dataset's parts."""
        self.setup()
        return {
            name: len(child.index["train"])
            for name, child in self.source_modules.items()
            if child.index and child.index["train"] and name not in self.held_out
        }

    def _train_sampler(self, n: int) -> EpochSampler:
        sizes = self.training_sizes()
        shares = source_shares(self.mix, sizes)
        if shares is None:
            return super()._train_sampler(n)
        draws = draws_per_source(list(sizes.values()), list(shares.values()), self.epoch_size)
        log.info(
            "data train epoch: %s",
            ", ".join(f"{d} of {s} {name}" for (name, s), d in zip(sizes.items(), draws, strict=True)),
        )
        start = training_epoch(getattr(self, "trainer", None), self._resume_train_epoch)
        return MixSampler(list(sizes.values()), draws, run_seed(), start)

    def carried_columns(self) -> dict[str, dict[str, str]]:
        """Per-image values written beside each prediction and split row: the source (and the sources' own)."""
        self.setup()
        columns: dict[str, dict[str, str]] = {SOURCE_COLUMN: dict(self.source_of)}
        for child in self.source_modules.values():
            for column, values in getattr(child, "carried_columns", dict)().items():
                columns.setdefault(column, {}).update(values)
        return columns

    def labels_csv_column(self, column: str, paths: Sequence[str], key: str) -> dict[str, str]:
        """`{path: value}` of a labels-CSV column (``eval.aggregate_by=video``), each path asked of its own source;
        with no paths every source checks that its CSV has the column."""
        self.setup()
        values: dict[str, str] = {}
        for name, child in self.source_modules.items():
            mine = [path for path in paths if self.source_of.get(path) == name]
            if mine or not paths:
                values.update(child.labels_csv_column(column, mine, key))
        return values

    def write_split_manifest(self, path: str | Path) -> Path:
        """`splits.csv` with a `source` column after `path, split, label, group`."""
        self.setup()
        assert self.index is not None
        return write_split_manifest(path, self.index, self.groups, self.carried_columns())
