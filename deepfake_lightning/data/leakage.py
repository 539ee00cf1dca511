"""Split leakage: the same image file in two splits inflates validation and test metrics without a trace.

Files are compared by size first (one `stat` each) and only files whose size occurs in more than one split
are hashed (SHA-1 of the bytes), so the check reads a small part of a typical dataset. It finds byte-identical
copies (a file copied or linked into two splits, the same photo listed twice), not re-encoded near-duplicates.

When the files have groups (`data.group_by`: a source video, a person), a group with members in two splits is
leakage too: a fake and the real frame it was made from are near-copies. That check reads no file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from deepfake_lightning.data.index import Index

log = logging.getLogger(__name__)
CHUNK = 1 << 20
SHOWN = 20  # duplicate groups listed in the warning; the count covers all of them


@dataclass(frozen=True)
class Leak:
    """One file content found in several splits: split -> paths holding it."""

    sha1: str
    paths: dict[str, list[str]]

    def describe(self) -> str:
        return " = ".join(f"{split}:{path}" for split, paths in sorted(self.paths.items()) for path in paths)


def _sha1(path: str) -> str | None:
    digest = hashlib.sha1(usedforsecurity=False)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError:  # unreadable files are reported (skipped) by the loaders, not here
        return None
    return digest.hexdigest()


def find_cross_split_duplicates(index: Index) -> list[Leak]:
    """Byte-identical files that occur in more than one split, sorted by their first path."""
    by_size: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for split, samples in index.items():
        for path, _ in samples:
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            if size > 0:  # empty files are unreadable images, not leakage
                by_size[size].append((split, path))
    by_hash: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for members in by_size.values():
        if len({split for split, _ in members}) < 2:
            continue
        for split, path in members:
            digest = _sha1(path)
            if digest is not None:
                by_hash[digest][split].append(path)
    leaks = [Leak(digest, dict(splits)) for digest, splits in by_hash.items() if len(splits) > 1]
    return sorted(leaks, key=lambda leak: leak.describe())


@dataclass(frozen=True)
class GroupLeak:
    """One group with members in several splits: split -> its paths there."""

    group: str
    paths: dict[str, list[str]]

    def describe(self) -> str:
        counts = ", ".join(f"{split}:{len(paths)}" for split, paths in sorted(self.paths.items()))
        return f"{self.group} ({counts})"


def find_cross_split_groups(index: Index, groups: Mapping[str, str]) -> list[GroupLeak]:
    """Groups whose members sit in more than one split, sorted by group; files without a group are ignored."""
    members: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for split, samples in index.items():
        for path, _ in samples:
            group = groups.get(path)
            if group:
                members[group][split].append(path)
    leaks = [GroupLeak(group, dict(splits)) for group, splits in members.items() if len(splits) > 1]
    return sorted(leaks, key=lambda leak: leak.group)


def report_group_leakage(index: Index, groups: Mapping[str, str], root: str) -> list[GroupLeak]:
    """Warn with the count and the first groups found in two splits; returns all of them."""
    leaks = find_cross_split_groups(index, groups)
    if leaks:
        files = sum(len(paths) for leak in leaks for paths in leak.paths.values())
        log.warning(
            "data leakage: %d group(s) of %s have members in more than one split (%d files): %s%s",
            len(leaks),
            root,
            files,
            "; ".join(leak.describe() for leak in leaks[:SHOWN]),
            " ..." if len(leaks) > SHOWN else "",
        )
    return leaks


def report_leakage(index: Index, root: str) -> list[Leak]:
    """Warn with the count and the first duplicates; returns every leak found."""
    leaks = find_cross_split_duplicates(index)
    if leaks:
        files = sum(len(paths) for leak in leaks for paths in leak.paths.values())
        listing = "; ".join(leak.describe() for leak in leaks[:SHOWN])
        log.warning(
            "data leakage: %d image(s) occur in more than one split of %s (%d files, identical bytes): %s%s",
            len(leaks),
            root,
            files,
            listing,
            " ..." if len(leaks) > SHOWN else "",
        )
    return leaks
