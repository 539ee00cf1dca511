"""Detections of image files, cached on disk by the file's SHA-256 and the detector's spec.

Detection is the costly step (a CNN pass per image); alignment is one `warpAffine`. So training with
`data.face_crop`, `prepare` and `landmarks_for` detect each file once, keep the faces (boxes, scores, landmarks)
in one JSON-lines file per detector spec, and crop from them. A renamed or copied file hits the cache (same
bytes); an edited file misses it (new hash). Lines are appended and flushed one by one, so a killed run keeps
everything it detected; a half-written last line is ignored on reading.

    landmarks = landmarks_for(paths, load=load_rgb)   # N x 5 x 2 (x, y) of each image's largest face, NaN where none was found
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deepfake_lightning.faces.base import FaceDetector
from deepfake_lightning.faces.detector import build_detector
from deepfake_lightning.faces.types import Face
from deepfake_lightning.utils.hashing import sha256_file

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`$DFL_CACHE_DIR/faces`, else `~/.cache/deepfake_lightning/faces`."""
    root = os.environ.get("DFL_CACHE_DIR") or Path.home() / ".cache" / "deepfake_lightning"
    return Path(root) / "faces"


def _face_record(face: Face) -> dict[str, Any]:  # full precision: a cached face crops to the same pixels
    return {
        "box": [float(v) for v in face.box],
        "score": float(face.score),
        "landmarks": None if face.landmarks is None else face.landmarks.tolist(),
    }


def _face_from(record: dict[str, Any]) -> Face:
    marks = record["landmarks"]
    return Face(
        tuple(record["box"]), record["score"], None if marks is None else np.asarray(marks, np.float64)
    )


class DetectionCache:
    """`faces(path, image_loader)`: the cached faces of a file, detected (and stored) on a miss."""

    def __init__(self, detector: FaceDetector, folder: str | Path | None = None) -> None:
        self.detector = detector
        spec = json.dumps(detector.describe() | {"backend": None, "threads": None}, sort_keys=True)
        key = hashlib.sha256(spec.encode()).hexdigest()[:16]
        self.path = Path(folder or default_cache_dir()) / f"{detector.name}-{key}.jsonl"
        self._faces: dict[str, list[Face]] = {}
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        if not self.path.is_file():
            return
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    self._faces[record["sha256"]] = [_face_from(face) for face in record["faces"]]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a killed run: detected again on demand

    def __len__(self) -> int:
        if not self._loaded:
            self._load()
        return len(self._faces)

    def faces(self, path: str | Path, load: Callable[[Path], np.ndarray]) -> list[Face]:
        if not self._loaded:
            self._load()
        digest = sha256_file(Path(path))
        if digest not in self._faces:
            found = self.detector.detect(load(Path(path)))
            self._faces[digest] = found
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"sha256": digest, "faces": [_face_record(f) for f in found]}) + "\n")
        return self._faces[digest]


def landmarks_for(
    paths: Sequence[str | Path] | Iterable[str | Path],
    detector: str | FaceDetector = "centerface",
    cache_dir: str | Path | None = None,
    progress: bool = False,
    *,
    load: Callable[[Path], np.ndarray],
) -> np.ndarray:
    """N x 5 x 2 float array: the 5 landmarks (x, y; `LANDMARK_NAMES` order) of each image's largest face,
    NaN rows where no face was found. Cached (see the module doc), so a second call only hashes the files.

    `load` decodes a file to RGB uint8 (the project's decoder is `data.images.load_rgb`); the caller passes it
    because the data package, which builds on faces (self-blend masks), owns decoding.
    """
    found = build_detector(detector) if isinstance(detector, str) else detector
    if not found.has_landmarks:
        raise ValueError(f"landmarks_for: the {found.name} detector gives no landmarks; use centerface")
    cache = DetectionCache(found, cache_dir)
    files = [Path(p) for p in paths]
    result = np.full((len(files), 5, 2), np.nan)
    iterator: Iterable[tuple[int, Path]] = enumerate(files)
    if progress:
        iterator = tqdm(iterator, total=len(files), desc="landmarks", unit="img")
    for i, path in iterator:
        faces = cache.faces(path, load)
        if faces:
            result[i] = max(faces, key=lambda face: face.area).landmarks
    misses = int(np.isnan(result[:, 0, 0]).sum())
    if misses:
        log.info("landmarks_for: no face found in %d of %d images (NaN rows)", misses, len(files))
    return result
