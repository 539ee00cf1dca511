"""Resuming a killed `prepare`: one small JSON record per finished video under `OUTPUT/.prepare/videos/`.

A record is written (atomically: a temporary file, then a rename) only after every crop of its video is on
disk, so a record means the video is complete; a video without one is prepared again from scratch (its folder is
cleared first). `OUTPUT/.prepare/settings.json` holds what decides the crops (input, frames, face pipeline, image
format): a rerun with other settings is refused with one line rather than mixing two kinds of crops in one set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepfake_lightning.data.index import DatasetLayoutError
from deepfake_lightning.data.video_dataset.extract import VideoResult

STATE_DIR = ".prepare"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class ResumeStore:
    """Records of finished videos in `output/.prepare/`, for one set of crop settings."""

    def __init__(self, output: Path, settings: dict[str, Any]) -> None:
        self.output = output
        self.state = output / STATE_DIR
        self.videos = self.state / "videos"
        self.settings = settings
        settings_file = self.state / "settings.json"
        if settings_file.is_file():
            before = json.loads(settings_file.read_text(encoding="utf-8"))
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            if changed:
                shown = ", ".join(f"{k}={before.get(k)!r} (now {settings.get(k)!r})" for k in changed)
                raise DatasetLayoutError(
                    f"output={output}: prepared earlier with {shown}; continue with the same settings, or "
                    "choose a new output folder"
                )
        else:
            write_atomic(settings_file, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        self.videos.mkdir(parents=True, exist_ok=True)

    def _path(self, video: str) -> Path:
        return self.videos / f"{hashlib.sha1(video.encode()).hexdigest()[:20]}.json"

    def load(self, video: str) -> VideoResult | None:
        path = self._path(video)
        if not path.is_file():
            return None
        try:
            result = VideoResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError):
            return None  # unreadable record: the video is prepared again
        return result if result.video == video else None

    def save(self, result: VideoResult) -> None:
        write_atomic(self._path(result.video), json.dumps(result.to_dict()) + "\n")

    def records(self) -> Iterator[VideoResult]:
        for path in sorted(self.videos.glob("*.json")):
            try:
                yield VideoResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, KeyError):
                continue

    def remove(self, result: VideoResult, folder: str) -> None:
        """Forget a finished video and delete its crops (it left the input, or its label changed)."""
        shutil.rmtree(self.output / folder, ignore_errors=True)
        self._path(result.video).unlink(missing_ok=True)
