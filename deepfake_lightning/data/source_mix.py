"""How a multi-source training epoch is drawn (`data.mix`, `data.epoch_size`).

``concat`` (default): every training image once per epoch, in a random order (`EpochSampler`): sources weigh
by their size, so a 8,000-image set drowns a 1,600-image one. ``equal``: every source the same share of each
epoch. ``{name: fraction}``: those shares (fractions >= 0 summing to 1; a key joining names with ``+`` shares its
fraction among them in proportion to their training images), which is how an update replays a fraction of the
old data.

Under shares an epoch holds ``epoch_size`` images; null means as many as can be drawn without repeating an
image: the epoch ends when the source that runs out first, relative to its share, is used up (the largest sets
are subsampled, a different subset every epoch). A larger ``epoch_size`` repeats images of the small sources,
each pass in a new order. Which images, their order and their augmentation seeds are drawn from (seed, epoch)
alone, as `EpochSampler` draws them, so a resumed run repeats the uninterrupted one. Classes are not rebalanced:
each source keeps its real/fake ratio in expectation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from deepfake_lightning.data.epoch_sampler import EpochSampler
from deepfake_lightning.utils.config_schema import ConfigError

SHARE_TOLERANCE = 1e-6


def source_shares(mix: Any, sizes: Mapping[str, int]) -> dict[str, float] | None:
    """Each training source's share of an epoch (None for ``concat``); `sizes` are the training images per
    source, in order. Every training source must be named once, by itself or in a ``+`` group."""
    if mix in (None, "concat"):
        return None
    if mix == "equal":
        return {name: 1.0 / len(sizes) for name in sizes}
    if not isinstance(mix, Mapping):
        raise ConfigError(f"data.mix={mix!r}: expected concat, equal or {{source: fraction}}")
    shares: dict[str, float] = {}
    for key, fraction in mix.items():
        members = [name.strip() for name in str(key).split("+")]
        unknown = [name for name in members if name not in sizes]
        if unknown:
            raise ConfigError(
                f"data.mix.{key}={fraction!r}: {unknown[0]!r} is not a training source; expected names among "
                f"{list(sizes)} (held-out sources are not trained on)"
            )
        twice = [name for name in members if name in shares]
        if twice:
            raise ConfigError(f"data.mix.{key}={fraction!r}: source {twice[0]!r} is named twice in data.mix")
        total = sum(sizes[name] for name in members)
        for name in members:
            shares[name] = float(fraction) * sizes[name] / total if total else 0.0
    missing = [name for name in sizes if name not in shares]
    if missing:
        raise ConfigError(
            f"data.mix={dict(mix)!r}: no share for training source(s) {missing}; name each once (0 leaves one out)"
        )
    if any(value < 0 for value in shares.values()) or abs(sum(mix.values()) - 1) > SHARE_TOLERANCE:
        raise ConfigError(f"data.mix={dict(mix)!r}: expected fractions >= 0 summing to 1")
    return shares


def draws_per_source(sizes: Sequence[int], shares: Sequence[float], epoch_size: int | None) -> list[int]:
    """Images drawn from each source per epoch: ``round(share * epoch_size)``; null ``epoch_size`` is the
    largest epoch that repeats no image."""
    if epoch_size is None:
        fits = [size / share for size, share in zip(sizes, shares, strict=True) if share > 0]
        epoch_size = int(min(fits)) if fits else 0
    return [round(share * epoch_size) for share in shares]


class MixSampler(EpochSampler):
    """`EpochSampler` over concatenated sources with fixed draws per source and epoch.

    Yields ``(index into the concatenation, augmentation seed)``; source ``i`` holds indices
    ``offsets[i] .. offsets[i] + sizes[i] - 1``."""

    def __init__(self, sizes: Sequence[int], draws: Sequence[int], seed: int, epoch: int = 0) -> None:
        super().__init__(int(sum(draws)), seed, epoch)
        self.sizes, self.draws = list(sizes), list(draws)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        picked = []
        for offset, size, draws in zip(self.offsets, self.sizes, self.draws, strict=True):
            passes = -(-draws // size) if size else 0  # whole permutations, cut to `draws`
            local = np.concatenate([rng.permutation(size) for _ in range(passes)] or [np.zeros(0, np.int64)])
            picked.append(offset + local[:draws])
        order = rng.permutation(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
        seeds = rng.integers(0, 2**31, size=len(order))
        self.epoch += 1
        self.next_epoch = self.epoch
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))
