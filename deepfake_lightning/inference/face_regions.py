"""What inference scores in one image: each face's aligned crop, or the whole image when there is no face.

With a face pipeline, every face found is scored and the image's `p_fake` is the highest of its faces (one fake
face makes a fake photo); rows, API answers and the page list every face with its box, landmarks and own
`p_fake`. Without a face, the whole image is scored and `face` says `not_found`, so nothing is dropped.

Which pipeline: `resolve_face_pipeline` — by default the one the model's bundle records (the crops it was
trained on), so training and inference crop alike; `face_crop=false`, or another detector, alignment, scale or
size, is an explicit choice, recorded in `describe()` and in every output beside the bundle's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfake_lightning.data.face_crops import face_crop_spec
from deepfake_lightning.faces import FACE_FOUND, FACE_NOT_FOUND, FacePipeline

FACE_COLUMNS = ("face", "n_faces", "faces")
# The keys of entry-point configs that choose a pipeline, and the spec key each sets.
FACE_OPTION_KEYS = {
    "face_detector": "detector",
    "face_alignment": "alignment",
    "face_scale": "scale",
    "face_size": "size",
}
MAX_FACES = 16  # faces scored per image by default (best detector score first): a crowd costs at most this
DEFAULT_SPEC: dict[str, Any] = {"detector": "centerface", "alignment": "landmarks", "scale": 1.3, "size": 256}


@dataclass
class FaceReport:
    """One image's faces: `status` found/not_found and per face its box, score, landmarks and alignment."""

    status: str
    faces: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_regions(self) -> int:
        """How many inputs this image contributes to a batch: one per face, or the whole image."""
        return max(1, len(self.faces))

    def fields(self, p_faces: np.ndarray | list[float] | None) -> dict[str, Any]:
        """`face`, `n_faces` and `faces` (each face with its own p_fake) for a row or an answer."""
        faces = [
            {**face, "p_fake": None if p_faces is None else float(p)}
            for face, p in zip(
                self.faces, p_faces if p_faces is not None else [None] * len(self.faces), strict=True
            )
        ]
        return {"face": self.status, "n_faces": len(self.faces), "faces": faces}


@dataclass
class ResolvedFaces:
    """The pipeline inference uses (None: whole images) and where the choice came from."""

    pipeline: FacePipeline | None
    source: str  # "bundle" | "explicit" | "default" | "off" | "explicit: off"
    bundle_spec: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "face_pipeline": None if self.pipeline is None else self.pipeline.spec(),
            "face_pipeline_source": self.source,
            "bundle_face_pipeline": self.bundle_spec,
        }


def bundle_face_spec(bundle: Any) -> dict[str, Any] | None:
    """The face pipeline a model was trained with: its preprocessing's `face_crop` record (data.face_crop)."""
    return face_crop_spec((getattr(bundle, "preprocessing", None) or {}).get("face_crop"))


def regions(pipeline: FacePipeline | None, image: np.ndarray) -> tuple[list[np.ndarray], FaceReport | None]:
    """The arrays to score for one image (each face's crop, else the image itself) and its face report."""
    if pipeline is None:
        return [image], None
    crops = pipeline.crops(image)
    if not crops:
        return [image], FaceReport(FACE_NOT_FOUND)
    return [crop.image for crop in crops], FaceReport(FACE_FOUND, [crop.to_dict() for crop in crops])


def resolve_face_pipeline(
    bundle_spec: dict[str, Any] | None,
    face_crop: bool | None = None,
    max_faces: int | None = MAX_FACES,
    **options: Any,
) -> ResolvedFaces:
    """`face_crop=None`: the bundle's pipeline if it records one, else whole images. `True`: the bundle's (or the
    default, CenterFace + landmarks at 1.3 / 256) with `options` (spec keys: detector, alignment, scale, size)
    on top. `False`: whole images, even for a model trained on crops. At most `max_faces` faces per image are
    scored, best detector score first (None: all)."""
    given = {key: value for key, value in options.items() if value is not None}
    if face_crop is False:
        if given:
            raise ValueError(
                f"face_crop=false with face options {sorted(given)}: drop them or set face_crop=true"
            )
        return ResolvedFaces(None, "explicit: off" if bundle_spec else "off", bundle_spec)
    if face_crop is None and not given:
        if bundle_spec is None:
            return ResolvedFaces(None, "off", None)
        return ResolvedFaces(FacePipeline.from_spec(bundle_spec, max_faces), "bundle", bundle_spec)
    base = dict(bundle_spec) if bundle_spec else dict(DEFAULT_SPEC)
    if given.get("detector", base.get("detector")) != base.get("detector"):  # its thresholds do not apply
        base = {k: v for k, v in base.items() if k in ("alignment", "scale", "size")}
    pipeline = FacePipeline.from_spec({**base, **given}, max_faces)
    if bundle_spec and pipeline.spec() == FacePipeline.from_spec(bundle_spec).spec():
        return ResolvedFaces(pipeline, "bundle", bundle_spec)
    return ResolvedFaces(pipeline, "explicit" if given or bundle_spec else "default", bundle_spec)


def options_from_config(get: Any) -> dict[str, Any]:
    """The spec options an entry-point config sets (`face_detector=...` -> `detector`), None when unset."""
    return {spec_key: get(key) for key, spec_key in FACE_OPTION_KEYS.items()}
