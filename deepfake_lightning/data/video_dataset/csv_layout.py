"""A plain labels CSV for any folder of videos: columns `video` (the path under the input folder, or absolute),
`label` (real/fake or 0/1, 1 = fake; the video must lie under the input folder) and optionally `group` (what a fake shares with its source: the source
video's name, a person); without `group` each video is its own group. Other columns are kept."""

from __future__ import annotations

import csv
from pathlib import Path

from deepfake_lightning.data.video_dataset.listing import (
    Listing,
    VideoItem,
    parse_label,
    video_id,
    walk_videos,
)

REQUIRED = ("video", "label")
KNOWN = (*REQUIRED, "group")


def list_csv(root: Path, labels: Path) -> Listing:
    listing = Listing("csv")
    with labels.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        missing = [column for column in REQUIRED if column not in columns]
        if missing:
            listing.problem(
                f"labels={labels}: no column(s) {', '.join(missing)} (columns: {', '.join(columns) or 'none'}); "
                "expected video,label[,group]"
            )
            return listing.finish()
        listed: set[Path] = set()
        for number, row in enumerate(reader, start=2):
            name = (row.get("video") or "").strip()
            path = Path(name) if Path(name).is_absolute() else root / name
            label = parse_label(row.get("label") or "")
            where = f"{labels}:{number}: {name}"
            if not name:
                listing.problem(f"{labels}:{number}: empty video; skipped")
            elif path.resolve() in listed:
                listing.problem(f"{where}: listed twice; the first row is kept")
            elif label is None:
                listing.problem(f"{where}: label={row.get('label')!r}; expected real, fake, 0 or 1; skipped")
            elif not path.is_file():
                listing.problem(f"{where}: listed but not found ({path}); skipped")
            elif not path.resolve().is_relative_to(root.resolve()):
                listing.problem(f"{where}: outside the input folder {root}; skipped")
            else:
                listed.add(path.resolve())
                vid = video_id(path.resolve(), root.resolve())
                group = (row.get("group") or "").strip() or vid
                extra = tuple((c, (row.get(c) or "").strip()) for c in columns if c not in KNOWN)
                listing.add(VideoItem(path, label, vid, group, extra))
    for path in walk_videos(root):
        if path.resolve() not in listed and path.resolve() != labels.resolve():
            listing.problem(f"{path}: not listed in {labels}, so its label is unknown; skipped")
    return listing.finish()
