"""The SHA-256 of a file: one helper for weights checks, model bundles and caches."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex digest, read in 1 MiB chunks (a checkpoint never has to fit in memory twice)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
