"""Celeb-DF (v1/v2): `Celeb-real/` and `YouTube-real/` are real, `Celeb-synthesis/` is fake, and
`List_of_testing_videos.txt` names the official test videos, one `<label> <folder>/<file>` per line with
**1 = real, 0 = fake** (Celeb-DF's own convention, the reverse of this project's).

Groups: `Celeb-synthesis/id0_id16_0000.mp4` is `Celeb-real/id0_0000.mp4` with id16's face, so it shares that
real video's group. Column `official_split` is `test` for the listed videos, `train` for the others; `subset=test`
prepares only the listed ones (the usual cross-dataset test set), `subset=train` only the others.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_lightning.data.video_dataset.listing import Listing, VideoItem, video_id, walk_videos

REAL_FOLDERS = ("Celeb-real", "YouTube-real")
FAKE_FOLDER = "Celeb-synthesis"
TEST_LIST = "List_of_testing_videos.txt"
LIST_LABELS = {"1": 0, "0": 1}  # Celeb-DF's list: 1 = real, 0 = fake -> this project's 0 = real, 1 = fake


def is_celebdf(root: Path) -> bool:
    return any((root / name).is_dir() for name in (*REAL_FOLDERS, FAKE_FOLDER))


def _source_video(stem: str) -> str:
    """`id0_id16_0000` -> `Celeb-real/id0_0000` (the target's real video); other names are their own source."""
    parts = stem.split("_")
    if len(parts) == 3 and parts[0].startswith("id") and parts[1].startswith("id"):
        return f"{REAL_FOLDERS[0]}/{parts[0]}_{parts[2]}"
    return f"{FAKE_FOLDER}/{stem}"


def read_test_list(path: Path, listing: Listing) -> dict[str, int]:
    """`folder/file.mp4` -> label (1 = fake) of every well-formed line; a bad line is one problem line."""
    listed: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        label = LIST_LABELS.get(fields[0]) if len(fields) == 2 else None
        if label is None:
            listing.problem(
                f"{path}:{number}: {line.strip()!r}: expected '<1 (real) or 0 (fake)> <folder>/<video>'; skipped"
            )
            continue
        listed[fields[1]] = label
    return listed


def list_celebdf(root: Path, labels: Path | None = None, subset: str = "all") -> Listing:
    listing = Listing("celebdf")
    test_list = labels or root / TEST_LIST
    listed = read_test_list(test_list, listing) if test_list.is_file() else {}
    if labels is not None and not labels.is_file():
        listing.problem(f"labels={labels}: file not found; no official test split recorded")
    seen: set[str] = set()
    for folder, label in [(name, 0) for name in REAL_FOLDERS] + [(FAKE_FOLDER, 1)]:
        for path in walk_videos(root / folder):
            rel = path.relative_to(root).as_posix()
            seen.add(rel)
            if rel in listed and listed[rel] != label:
                listing.problem(
                    f"{test_list}: {rel} is listed as {'fake' if listed[rel] else 'real'} but sits in "
                    f"{folder}/ ({'fake' if label else 'real'}); skipped"
                )
                continue
            split = "test" if rel in listed else "train"
            if subset != "all" and split != subset:
                continue
            group = _source_video(path.stem) if label else path.relative_to(root).with_suffix("").as_posix()
            listing.add(VideoItem(path, label, video_id(path, root), group, (("official_split", split),)))
    for rel in sorted(set(listed) - seen):
        listing.problem(f"{test_list} lists {rel}, which is not in {root}; skipped")
    return listing.finish()
