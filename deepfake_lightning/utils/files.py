"""Walking a folder for files of one kind (images, videos), in a stable order that skips hidden folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def walk_files(folder: str | Path, keep: Callable[[str], bool]) -> list[str]:
    """Paths (as strings, joined onto `folder`) of the files under `folder` whose name `keep` accepts: folders
    and names sorted, hidden folders skipped, symlinked folders not followed."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, name) for name in sorted(filenames) if keep(name))
    return found
