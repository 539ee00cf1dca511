"""`data.face_crop`: train and evaluate on aligned face crops of photos that are not crops yet.

Detection runs once per file, in the main process at `setup()`, through the on-disk `DetectionCache` (keyed by
file SHA-256): a second run, or eval after train, only hashes the files. Each image's largest face is kept
(the subject of a photo); the DataLoader workers then only align it (one `warpAffine`), so an epoch costs what
it costs without faces. A photo with no face is used whole, or dropped with `on_no_face=skip`; either way it is
counted and logged, never silently changed. The same spec goes into the model bundle, so inference crops alike.

A folder set that `prepare` made from videos is crops already: training reads it as it is, and the face pipeline
that cut it (its `summary.json`'s `settings.face`) is recorded instead, marked `made_by: prepare`, so that
predict, predict_video and the service cut frames and photos as the training crops were cut.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_lightning.data.images import BadImageError, load_rgb
from deepfake_lightning.data.index import Index
from deepfake_lightning.faces import Alignment, DetectionCache, Face, FacePipeline
from deepfake_lightning.faces.pipeline import SPEC_OPTIONS

log = logging.getLogger(__name__)
SPEC_KEYS = ("detector", "alignment", "scale", "size")
# the detector options a spec may carry (thresholds, working size): a `prepare` summary records them
OPTION_KEYS = tuple(sorted({key for keys in SPEC_OPTIONS.values() for key in keys}))
MADE_BY_PREPARE = "prepare"  # a record's `made_by`: the crops were written ahead of training by `prepare`
SUMMARY_FILE = "summary.json"  # what `prepare` writes beside its crops (data/video_dataset/run.py)


def face_crop_spec(settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The face pipeline spec (detector and its options, alignment, scale, size) a `data.face_crop` node, or the
    record of it in a model's preprocessing, describes; None when off or absent (images used as they are)."""
    if not settings or not settings.get("enabled"):
        return None
    return {key: settings[key] for key in (*SPEC_KEYS, *OPTION_KEYS) if key in settings}


def prepared_face_record(root: str | Path | None) -> dict[str, Any] | None:
    """The `preprocessing.face_crop` record of a folder set `prepare` made: the face pipeline its `summary.json`
    says cut the crops (`settings.face`), with `made_by: prepare`; None for any other folder."""
    summary = Path(str(root)) / SUMMARY_FILE if root else None
    if summary is None or not summary.is_file():
        return None
    try:
        face = json.loads(summary.read_text(encoding="utf-8"))["settings"]["face"]
    except (ValueError, KeyError, TypeError):  # a summary.json of something else: not a prepared set
        return None
    if not isinstance(face, dict) or "detector" not in face:
        return None
    spec = {key: face[key] for key in (*SPEC_KEYS, *OPTION_KEYS) if key in face}
    return {"enabled": True, **spec, "made_by": MADE_BY_PREPARE}


def data_face_crop(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The `data.face_crop` settings a model's `preprocessing.face_crop` record asks eval to apply to its data;
    None for crops `prepare` made ahead (the data is crops already: it is read as it is)."""
    if record is None or record.get("made_by") == MADE_BY_PREPARE:
        return None
    return {key: value for key, value in record.items() if key != "made_by"}


@dataclass
class FaceCropper:
    """`crop(path, image)`: the image's largest face, aligned; the image itself when none was found.

    Picklable (plain data) for DataLoader workers: `faces` maps each path to its face, found at `setup()`.
    """

    alignment: Alignment
    faces: dict[str, Face | None] = field(default_factory=dict)

    def __call__(self, path: str, image: np.ndarray) -> np.ndarray:
        face = self.faces.get(path)
        return image if face is None else self.alignment.crop(image, face)[0]

    def reflected(self, path: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(the crop with the photo's border reflected where `self(path, image)` is black, the bool mask of the
        pixels both share), or None where the photo is used whole. Self-blend makes its perturbed source from the
        first and blends only inside the second, so the black padding stays black and never shifts."""
        face = self.faces.get(path)
        if face is None:
            return None
        return self.alignment.crop(image, face, cv2.BORDER_REFLECT_101)[0], self.alignment.inside(
            image.shape, face
        )

    def crop_landmarks(self, path: str) -> np.ndarray | None:
        """The 5 landmarks of `path`'s face in the coordinates of the image `self(path, image)` returns: mapped
        through the crop's own matrix; None where no face was found (the photo is used whole) or the face has
        no landmarks (Haar). What `data.fakes=self_blend` draws its mask from on aligned crops."""
        face = self.faces.get(path)
        return None if face is None else self.alignment.landmarks_in_crop(face)


def detect_index(
    index: Index, settings: Mapping[str, Any], on_bad_image: str = "skip", decoder: str = "auto"
) -> tuple[Index, FaceCropper, dict[str, Any]]:
    """(index without the photos `on_no_face=skip` drops, the cropper, counts) for `data.face_crop`."""
    spec = face_crop_spec(settings)
    assert spec is not None, "detect_index needs data.face_crop.enabled=true"
    pipeline = FacePipeline.from_spec(spec)
    cache = DetectionCache(pipeline.detector, settings.get("cache_dir"))
    cropper = FaceCropper(pipeline.alignment)
    cached_before = len(cache)
    no_face: list[str] = []
    kept: Index = {}
    for split, samples in index.items():
        kept[split] = []
        for path, target in samples:
            try:
                faces = cache.faces(path, lambda p: load_rgb(p, decoder=decoder))
            except BadImageError:
                if on_bad_image == "raise":
                    raise
                kept[split].append((path, target))  # the dataset skips and reports it when it reads it
                continue
            cropper.faces[path] = max(faces, key=lambda face: face.area) if faces else None
            if not faces:
                no_face.append(path)
                if settings.get("on_no_face") == "skip":
                    continue
            kept[split].append((path, target))
    total = sum(len(samples) for samples in index.values())
    counts = {
        "images": total,
        "faces_found": len(cropper.faces) - len(no_face),
        "no_face": len(no_face),
        "on_no_face": settings.get("on_no_face", "full"),
        "detected_now": len(cache) - cached_before,
        "cache": str(cache.path),
        "pipeline": pipeline.spec(),
    }
    log.info(
        "data.face_crop: a face in %d of %d images (%s; %d detected now, the rest from %s)",
        counts["faces_found"], total, counts["pipeline"]["detector"], counts["detected_now"], cache.path,
    )  # fmt: skip
    if no_face:
        action = "skipped" if counts["on_no_face"] == "skip" else "used whole"
        log.warning(
            "data.face_crop: no face in %d image(s), %s (on_no_face=%s): %s%s",
            len(no_face), action, counts["on_no_face"], ", ".join(no_face[:5]), " ..." if len(no_face) > 5 else "",
        )  # fmt: skip
    return kept, cropper, counts
