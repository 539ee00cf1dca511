"""Class checks of an indexed dataset: a split with one class makes its AUROC meaningless, say so up front."""

from __future__ import annotations

import logging

from deepfake_lightning.data.index import CLASS_TARGETS, DatasetLayoutError, Index, Sample, describe

log = logging.getLogger(__name__)
_CONSEQUENCE = {
    "valid": "AUROC and AP are undefined on validation, so early stopping and best.ckpt (monitor val/auroc) "
    "cannot rank epochs",
    "test": "test AUROC, AP and EER are undefined; only accuracy and the detection rate of the class present mean anything",
    "train": "a detector cannot learn from one class",
}


def missing_classes(samples: list[Sample]) -> list[str]:
    present = {target for _, target in samples}
    return [name for name, target in CLASS_TARGETS.items() if target not in present]


def warn_single_class_splits(index: Index, root: str) -> None:
    """One warning per non-empty split that lacks a class (empty splits are refused when their loader is built)."""
    for split, counts in describe(index).items():
        if not index[split]:
            continue
        absent = missing_classes(index[split])
        if absent:
            log.warning(
                "data %s split of %s has no %s images (%s): %s",
                split,
                root,
                "/".join(absent),
                ", ".join(f"{n} {name}" for name, n in counts.items()),
                _CONSEQUENCE.get(split, "its metrics are undefined"),
            )


def require_trainable(samples: list[Sample], split: str, root: str) -> None:
    """A split used for training must exist and hold both classes."""
    if not samples:
        raise DatasetLayoutError(f"data split '{split}' of {root} is empty")
    absent = missing_classes(samples)
    if split == "train" and absent:
        raise DatasetLayoutError(
            f"data split 'train' of {root} has no {'/'.join(absent)} images: {_CONSEQUENCE['train']} "
            "(is a class folder empty or misnamed? expected real/ and fake/)"
        )
