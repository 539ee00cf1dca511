"""DFDC: each folder holds its videos and a `metadata.json`,
`{"abc.mp4": {"label": "FAKE", "original": "xyz.mp4", ...}, "xyz.mp4": {"label": "REAL"}}`. The full training set
is 50 such folders (`dfdc_train_part_N/`); every `metadata.json` under the input is read.

Groups: a fake keeps its `original` (the real video it was made from), a real its own name, so a fake and its
source never sit in two splits. Column `dfdc_split` keeps the metadata's `split` when present.
"""

from __future__ import annotations

import json
from pathlib import Path

from deepfake_lightning.data.video_dataset.listing import Listing, VideoItem, is_video, video_id

METADATA = "metadata.json"
DFDC_LABELS = {"REAL": 0, "FAKE": 1}


def metadata_files(root: Path, labels: Path | None = None) -> list[Path]:
    """`labels` when given, else every `metadata.json` in `root` and one level down (the part folders)."""
    if labels is not None:
        return [labels]
    return sorted([*root.glob(METADATA), *root.glob(f"*/{METADATA}")])


def is_dfdc(root: Path) -> bool:
    return bool(metadata_files(root))


def _read(path: Path, listing: Listing) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        listing.problem(f"{path}: not readable as JSON ({err}); its videos are skipped")
        return {}
    if not isinstance(data, dict):
        listing.problem(f"{path}: expected an object of video name -> {{label, original}}; skipped")
        return {}
    return data


def list_dfdc(root: Path, labels: Path | None = None) -> Listing:
    listing = Listing("dfdc")
    for metadata in metadata_files(root, labels):
        folder = metadata.parent
        entries = _read(metadata, listing)
        for name in sorted(entries):
            entry = entries[name] if isinstance(entries[name], dict) else {}
            path = folder / name
            label = DFDC_LABELS.get(str(entry.get("label", "")).upper())
            if label is None:
                listing.problem(
                    f"{metadata}: {name}: label={entry.get('label')!r}; expected REAL or FAKE; skipped"
                )
                continue
            if not path.is_file():
                listing.problem(f"{metadata} lists {name}, which is not in {folder}; skipped")
                continue
            original = str(entry.get("original") or "") if label else ""
            group = (folder / original if original else path).relative_to(root).with_suffix("").as_posix()
            extra = (("dfdc_split", str(entry.get("split", ""))),)
            listing.add(VideoItem(path, label, video_id(path, root), group, extra))
        for path in sorted(folder.iterdir()):
            if path.is_file() and is_video(path.name) and path.name not in entries:
                listing.problem(f"{path}: not listed in {metadata}, so its label is unknown; skipped")
    return listing.finish()
