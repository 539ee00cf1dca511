"""Dataset indexing on a full-size 140k tree of empty files: build time and Python memory of `index_faces140k`.

The file contents are never read by the index, so empty `.jpg` files give the real file-system and CSV work.
Timings are with a warm page cache (the tree was just written or listed); a cold first listing is slower.
"""

from __future__ import annotations

import csv
import logging
import os
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from deepfake_lightning.bench.rows import Row, Timing, make_row
from deepfake_lightning.data.index import PUBLISHED_140K, index_faces140k, index_folder

log = logging.getLogger(__name__)
COMPLETE = "tree_complete"


def make_index_tree(out: str | Path, n_files: int) -> Path:
    """Kaggle's layout (CSVs two levels above `real-vs-fake/`) with `n_files` split 100k:20k:20k, once."""
    out = Path(out)
    root = out / "real_vs_fake" / "real-vs-fake"
    if (out / COMPLETE).is_file():
        return root
    total = sum(PUBLISHED_140K.values())
    next_id = 0
    for split, published in PUBLISHED_140K.items():
        per_class = max(1, round(n_files * published / total / 2))
        rows = []
        for cls, label in (("real", 1), ("fake", 0)):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_class):
                name = f"{next_id:06d}.jpg"
                next_id += 1
                os.close(os.open(folder / name, os.O_CREAT | os.O_WRONLY, 0o644))
                rows.append((f"x/{name}", name, label, cls, f"{split}/{cls}/{name}"))
        with (out / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["original_path", "id", "label", "label_str", "path"])
            writer.writerows(rows)
    (out / COMPLETE).write_text(str(next_id))
    return root


def _rglob_baseline(root: Path) -> dict[str, list[tuple[str, int]]]:
    """The naive index: pathlib's recursive glob, label from the parent folder's name."""
    return {"all": [(str(p), int(p.parent.name == "fake")) for p in sorted(root.rglob("*.jpg"))]}


def _measure(name: str, fn: Callable[[], Any], n_files: int, repeats: int) -> Row:
    fn()  # warm the page cache and imports: the first listing of a fresh tree is not what is compared
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    try:
        index = fn()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    found = sum(len(samples) for samples in index.values())
    row = make_row(
        "index",
        "index",
        name,
        Timing(seconds, found),
        None,
        device="cpu",
        precision="-",
        batch_size=n_files,
        image_size=0,
        workers=0,
        threads=1,
    )
    row.peak_mem_mb = round(peak / 2**20, 1)  # Python heap while indexing (tracemalloc)
    row.extra |= {
        "files_found": found,
        "build_s": round(min(seconds), 3),
        "retained_mb": round(retained / 2**20, 1),
    }
    return row


def bench_index(cache_dir: str | Path, cfg: Mapping[str, Any]) -> list[Row]:
    n_files = int(cfg["n_files"])
    start = time.perf_counter()
    root = make_index_tree(Path(cache_dir) / f"index_tree_n{n_files}", n_files)
    log.info("index tree of %d files ready in %.1f s", n_files, time.perf_counter() - start)
    index_log = logging.getLogger("deepfake_lightning.data.index")
    level = index_log.level
    index_log.setLevel(logging.ERROR)  # a scaled-down tree is "not the published size" on purpose
    try:
        rows = [
            _measure("baseline:pathlib_rglob", lambda: _rglob_baseline(root), n_files, cfg["repeats"]),
            _measure("faces140k_csv", lambda: index_faces140k(root), n_files, cfg["repeats"]),
            _measure("class_folders", lambda: index_folder(root), n_files, cfg["repeats"]),
        ]
    finally:
        index_log.setLevel(level)
    for row in rows:
        row.extra["scaled_to_140k_s"] = round(row.extra["build_s"] * 140_000 / max(1, n_files), 3)
    return rows
