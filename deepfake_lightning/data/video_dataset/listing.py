"""What a layout reader returns: the videos to prepare, each with its label and group, and the problems found.

Every reader (FaceForensics++, Celeb-DF, DFDC, a plain CSV) gives the same `Listing`, so the rest of `prepare`
does not know which layout it came from. A problem (a listed video that is missing, an unknown label, a video on
disk that no label file lists) is one line naming the file; it leaves that video out and never stops the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from deepfake_lightning.utils.files import walk_files

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
LABELS = {"real": 0, "fake": 1, "0": 0, "1": 1}  # 1 = fake, as everywhere in this project
CLASS_NAMES = ("real", "fake")


@dataclass(frozen=True)
class VideoItem:
    """One video to prepare: its file, label (1 = fake), id (unique in the set: the path under the input without
    its suffix), group (a fake and the video it was made from share one) and layout-specific columns."""

    path: Path
    label: int
    video: str
    group: str
    extra: tuple[tuple[str, str], ...] = ()


@dataclass
class Listing:
    """The videos of one input folder, sorted by id, and one line per problem found while listing them."""

    layout: str
    items: list[VideoItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, line: str) -> None:
        log.warning("%s", line)
        self.problems.append(line)

    def add(self, item: VideoItem) -> None:
        self.items.append(item)

    def finish(self) -> Listing:
        self.items.sort(key=lambda item: item.video)
        seen: set[str] = set()
        for item in self.items:
            if item.video in seen:  # a reader's bug, never the user's: ids come from unique paths
                raise AssertionError(f"{self.layout}: video id {item.video!r} listed twice")
            seen.add(item.video)
        return self


def is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_SUFFIXES) and not name.startswith(".")


def walk_videos(folder: Path) -> list[Path]:
    """Every video file under `folder` (hidden folders skipped), sorted."""
    return [Path(path) for path in walk_files(folder, is_video)]


def video_id(path: Path, root: Path) -> str:
    """The path under the input folder without its suffix, with `/` separators: unique and readable."""
    return path.relative_to(root).with_suffix("").as_posix()


def parse_label(value: str) -> int | None:
    """real/fake (any case) or 0/1 -> 0/1; anything else None (the caller reports it)."""
    return LABELS.get(value.strip().lower())
