"""FaceForensics++: `original_sequences/<source>/<compression>/videos/*.mp4` are real,
`manipulated_sequences/<method>/<compression>/videos/*.mp4` are fake (any method folder: Deepfakes, Face2Face,
FaceSwap, NeuralTextures, FaceShifter, DeepFakeDetection...). Mask videos (`masks/`) are not faces to score.

Groups: FF++'s fakes come in pairs, `000_003` being youtube video 000 with the face of 003 (and `003_000` the
other way round); DeepFakeDetection's `01_02__scene__ID` puts actor 02's face on actor 01. A fake is linked to
both, and linked videos (or actors) form one group, so no source sits in two splits. Columns `method` and
`compression` are kept for per-method analysis.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_lightning.data.video_dataset.listing import Listing, VideoItem, video_id, walk_videos
from deepfake_lightning.data.video_dataset.union_groups import UnionGroups

REAL_FOLDER = "original_sequences"
FAKE_FOLDER = "manipulated_sequences"
ACTOR_SOURCES = ("actors", "DeepFakeDetection")  # Google's DeepFakeDetection: actors, not youtube ids


def is_ffpp(root: Path) -> bool:
    return (root / REAL_FOLDER).is_dir() or (root / FAKE_FOLDER).is_dir()


def _members(stem: str) -> list[str]:
    """`000_003` -> [000, 003]; `000` -> [000]; `01_02__exit_phone_room__YVGY8LOK` -> [01, 02]."""
    head = stem.split("__", 1)[0]
    return [part for part in head.split("_") if part] or [stem]


def list_ffpp(root: Path) -> Listing:
    listing = Listing("ffpp")
    unions = UnionGroups()
    found: list[tuple[Path, int, str, str, list[str]]] = []
    for path in walk_videos(root):
        parts = path.relative_to(root).parts
        if parts[0] not in (REAL_FOLDER, FAKE_FOLDER):
            listing.problem(
                f"{path}: not under {REAL_FOLDER}/ or {FAKE_FOLDER}/, so its label is unknown; skipped"
            )
            continue
        if "masks" in parts:
            continue
        label = int(parts[0] == FAKE_FOLDER)
        method = parts[1] if len(parts) > 2 else ("original" if not label else "unknown")
        compression = parts[2] if len(parts) > 4 else ""
        namespace = "actors" if method in ACTOR_SOURCES else "youtube"
        members = [f"{namespace}:{member}" for member in _members(path.stem)]
        unions.link(members)
        found.append((path, label, "original" if not label else method, compression, members))
    for path, label, method, compression, members in found:
        extra = (("method", method), ("compression", compression))
        listing.add(VideoItem(path, label, video_id(path, root), unions.name(members[0]), extra))
    if not listing.items:
        listing.problem(f"{root}: no videos under {REAL_FOLDER}/ or {FAKE_FOLDER}/")
    return listing.finish()
