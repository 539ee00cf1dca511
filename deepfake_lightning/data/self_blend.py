"""Self-blended fakes from real faces (the idea of SBI, Shiohara & Yamasaki, CVPR 2022; written here, not copied).

`data.fakes=self_blend` trains a detector on the REAL images of a set only. Every real face also yields a fake: the
face blended with a perturbed copy of itself inside a soft face mask,

    blended = real + mask * (source - real),    source = geometry(frequency(colour(real)))

so the fake carries the traces every face swap leaves (a boundary where two renderings of a face meet, colour and
sharpness that differ inside and outside it, a slight misalignment) and nothing specific to one generator. Outside
the mask (`mask == 0`) the fake is the real image, bit for bit.

* Source: albumentations 2.x colour (RGBShift, HueSaturationValue, RandomBrightnessContrast), one frequency change
  (Downscale, Sharpen, ImageCompression or GaussianBlur) and a small scale/translate (Affine).
* Mask: the face region. `mask=landmarks` (default): the convex hull of the 5 CenterFace landmarks (eyes, nose,
  mouth corners; `deepfake_lightning.faces`, cached per file) grown to forehead, cheeks and chin. Where no face is
  found (counted, logged) and with `mask=face_box`: an ellipse inscribed in `face_box` (fractions of the image:
  the shared sets are face crops with the face at a known place), jittered per sample. Then softened: a random
  erosion or dilation, an optional elastic deformation, a Gaussian blur of random width, and multiplied by a
  random blend ratio.
* Aligned crops (`data.face_crop.enabled=true`): the blend is made inside the aligned crop, the image the
  detector sees, from the landmarks of the same detection mapped through the same alignment matrix into crop
  pixels (`FaceCropper.crop_landmarks`). Blending the whole photo before cropping would also be exact, but every
  size-relative draw (the source's 3% shift, the mask's erosion and blur widths, the elastic wobble) would then
  scale with the photo instead of the face, so the fakes would differ from the ones on ready crops; blending the
  crop keeps one path: the blender always gets the image the detector sees and landmarks in its pixels. Where
  the crop reaches outside the photo (black padding, common for tight crops at scale 1.0), the source is made
  from the same crop with the photo's border reflected and the mask is cut to the photo's pixels, so the padding
  stays the real's (a shifted black edge inside the mask would mark every such fake). A photo with no face (used
  whole, `on_no_face=full`) keeps the face-box ellipse in the whole photo, counted and logged.
* Randomness: every draw comes from one seed per sample. In training that is the `EpochSampler`'s per-sample seed,
  a function of (run seed, epoch, position), so the fakes change every epoch and a resumed run draws the same ones
  (data/epoch_sampler.py); validation fakes are fixed, one per real, from (data.split_seed, index).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

from deepfake_lightning.data.dataset import ImageDataset
from deepfake_lightning.data.face_crops import FaceCropper
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.index import DatasetLayoutError, Index, Sample, describe
from deepfake_lightning.data.split_checks import warn_single_class_splits
from deepfake_lightning.data.transforms import _Pipeline
from deepfake_lightning.faces import FaceDetectorError, landmarks_for
from deepfake_lightning.utils.config_schema import ConfigError

log = logging.getLogger(__name__)

SELF_BLEND_SUFFIX = "#self_blend"  # the path a blended item carries: its real file, marked
ELASTIC_SIDE = 256  # the mask is deformed at this size: alpha 100, sigma 8 wobble its edge by a few percent
_SALT_BLEND, _SALT_VALID = 0x5B1, 0x5B2  # keep the blend's draws apart from the train transform's (same seed)


def _seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def source_transform() -> _Pipeline:
    """The perturbed copy: colour, one frequency change, a small misalignment. Strengths follow the SBI paper's
    ranges (shifts of a few percent); every step always applies, so the source always differs from the real."""
    return _Pipeline(
        A.Compose(
            [
                A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20, p=0.7),
                A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=15, p=0.7),
                A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=1.0),
                A.OneOf(
                    [
                        A.Downscale(scale_range=(0.4, 0.8), p=1.0),
                        A.Sharpen(alpha=(0.2, 0.5), lightness=(0.6, 1.0), p=1.0),
                        A.ImageCompression(quality_range=(40, 85), p=1.0),
                        A.GaussianBlur(sigma_limit=(0.5, 1.5), p=1.0),
                    ],
                    p=1.0,
                ),
                A.Affine(
                    scale=(0.95, 1.05),
                    translate_percent=(-0.03, 0.03),
                    border_mode=cv2.BORDER_REFLECT_101,
                    p=1.0,
                ),
            ]
        )
    )


def ellipse_mask(shape: tuple[int, int], face_box: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """0/1 ellipse inscribed in `face_box` (x0, y0, x1, y1 as fractions of width and height), its centre moved by
    up to 4% and each axis scaled by 0.85-1.1 per sample: the mask's shape is part of what varies."""
    height, width = shape
    x0, y0, x1, y1 = face_box
    centre = ((x0 + x1) / 2 + rng.uniform(-0.04, 0.04), (y0 + y1) / 2 + rng.uniform(-0.04, 0.04))
    axes = ((x1 - x0) / 2 * rng.uniform(0.85, 1.1), (y1 - y0) / 2 * rng.uniform(0.85, 1.1))
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(
        mask,
        (round(centre[0] * width), round(centre[1] * height)),
        (max(1, round(axes[0] * width)), max(1, round(axes[1] * height))),
        0.0,
        0.0,
        360.0,
        1,
        thickness=-1,
    )
    return mask


def landmark_mask(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0/1 convex hull of 5 landmarks (left eye, right eye, nose, left and right mouth corner; x, y in pixels)
    grown to the whole face: the 5 points span eyes to mouth only, so points are added above the eyes (forehead),
    outside them (cheeks) and below the mouth (chin), each distance scaled at random per sample."""
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = points[:2].mean(axis=0), points[3:].mean(axis=0)
    down = mouth - eyes  # eyes -> mouth: the face's vertical axis at its own scale and tilt
    across = points[1] - points[0]  # left eye -> right eye
    forehead, cheek, chin = rng.uniform(0.7, 1.1), rng.uniform(0.35, 0.55), rng.uniform(0.5, 0.8)
    grown = [
        points[0] - forehead * down - cheek * across,
        points[1] - forehead * down + cheek * across,
        points[0] + 0.5 * down - cheek * across,
        points[1] + 0.5 * down + cheek * across,
        points[3] + chin * down - 0.1 * across,
        points[4] + chin * down + 0.1 * across,
    ]
    hull = cv2.convexHull(np.round(np.vstack([points, grown])).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def soften(mask: np.ndarray, rng: np.random.Generator, elastic: _Pipeline, elastic_p: float) -> np.ndarray:
    """Hard 0/1 mask -> soft float32 mask in [0, 1] with an exactly-zero outside: a random erosion or dilation
    (up to 6% of the side), an elastic deformation with probability `elastic_p`, a Gaussian blur of random width
    (a finite kernel, so no tail leaks past it), peak rescaled to 1."""
    side = min(mask.shape)
    radius = int(rng.integers(1, max(2, round(0.06 * side)) + 1))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    operation = rng.choice(3)  # erode, dilate or keep
    if operation == 0:
        eroded = cv2.erode(mask, kernel)
        mask = eroded if eroded.any() else mask  # a small face must not vanish into an all-real "fake"
    elif operation == 1:
        mask = cv2.dilate(mask, kernel)
    soft = mask.astype(np.float32)
    if rng.random() < elastic_p:  # at a fixed working size, so the wobble is the same fraction of any face
        height, width = soft.shape
        work = cv2.resize(soft, (ELASTIC_SIDE, ELASTIC_SIDE), interpolation=cv2.INTER_LINEAR)
        work = elastic(work, seed=int(rng.integers(0, 2**31)))
        deformed = cv2.resize(work, (width, height), interpolation=cv2.INTER_LINEAR)
        soft = deformed if deformed.max() > 0.5 else soft
    blur = 2 * int(rng.integers(max(1, side // 64), max(2, side // 10) + 1)) + 1
    soft = cv2.GaussianBlur(soft, (blur, blur), 0)
    return soft / soft.max()


class SelfBlender:
    """real (HxWx3 uint8) + seed [+ 5 landmarks] -> (blended HxWx3 uint8, mask HxW float32 in [0, 1]).

    Picklable (DataLoader workers); the same arguments give the same output in any process."""

    def __init__(
        self,
        face_box: Sequence[float] = (0.2, 0.15, 0.8, 0.9),
        blend_ratios: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0),
        elastic_p: float = 0.5,
    ) -> None:
        self.face_box = tuple(float(v) for v in face_box)
        self.blend_ratios = np.asarray(blend_ratios, np.float32)
        self.elastic_p = float(elastic_p)
        self.source = source_transform()
        self.elastic = _Pipeline(A.Compose([A.ElasticTransform(alpha=100, sigma=8, approximate=True, p=1.0)]))

    def __call__(
        self,
        real: np.ndarray,
        seed: int,
        landmarks: np.ndarray | None = None,
        reflected: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`reflected` (aligned crops that reach outside the photo, `FaceCropper.reflected`): (the crop with the
        photo's border reflected instead of black, the pixels it shares with `real`). The source is perturbed
        from the first and the mask cut to the second, so the black padding is the real's, never a shifted
        copy of it (a straight edge inside the mask that only fakes would have). The draws are the same."""
        rng = np.random.default_rng(_seed(_SALT_BLEND, seed))
        base, inside = (real, None) if reflected is None else reflected
        source = self.source(base, seed=int(rng.integers(0, 2**31)))
        shape = real.shape[:2]
        hard = (
            ellipse_mask(shape, self.face_box, rng)
            if landmarks is None
            else landmark_mask(shape, landmarks, rng)
        )
        mask = soften(hard, rng, self.elastic, self.elastic_p) * rng.choice(self.blend_ratios)
        if inside is not None:
            mask = mask * inside
        weight = mask[..., None]
        blended = real.astype(np.float32) + weight * (source.astype(np.float32) - real.astype(np.float32))
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8), mask


class SelfBlendDataset(ImageDataset):
    """The reals of a split, then one self-blend of each: item `i < n` is real `i` (target 0), unchanged; item
    `n + i` is a blend of real `i` (target 1), its path marked with `#self_blend`.

    A training key `(i, seed)` from `EpochSampler` blends with that seed (new fakes every epoch); a plain index
    (validation) blends with a seed fixed by (`fixed_seed`, i), so every epoch validates on the same fakes.
    With `crop` (data.face_crop) reals and blends are aligned crops, and `landmarks` are in crop pixels."""

    def __init__(
        self,
        reals: Sequence[Sample],
        transform: Any,
        blender: SelfBlender,
        fixed_seed: int = 0,
        on_bad_image: str = "skip",
        decoder: str = "auto",
        landmarks: Mapping[str, np.ndarray] | None = None,
        crop: FaceCropper | None = None,
    ) -> None:
        self.n_real = len(reals)
        samples = [*reals, *((path, 1) for path, _ in reals)]
        super().__init__(samples, transform, on_bad_image, decoder, crop)
        self.cropper = crop
        self.blender = blender
        self.fixed_seed = fixed_seed
        self.landmarks = landmarks or {}

    def _load(self, index: int, path: str, augment_seed: int | None) -> np.ndarray:
        if index < self.n_real:
            return super()._load(index, path, augment_seed)
        seed = _seed(_SALT_VALID, self.fixed_seed, index) if augment_seed is None else augment_seed
        photo = load_rgb(path, decoder=self.decoder)
        if self.cropper is None:
            return self.blender(photo, seed, self.landmarks.get(path))[0]
        real = self.cropper(path, photo)
        return self.blender(real, seed, self.landmarks.get(path), self.cropper.reflected(path, photo))[0]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        item = super().__getitem__(key)
        index = key[0] if isinstance(key, tuple) else key
        if index >= self.n_real and "path" in item:
            item["path"] += SELF_BLEND_SUFFIX
        return item


def blended_splits(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The splits whose fakes are self-blends: train always, valid unless `val_fakes=dataset`; never test (the
    set's own real fakes are what is measured)."""
    return ("train", "valid") if settings.get("val_fakes", "self_blend") == "self_blend" else ("train",)


def _require_reals(n_real: int, n_fake: int, split: str, root: str) -> None:
    if n_real == 0:
        raise DatasetLayoutError(
            f"data.fakes=self_blend: the {split} split of {root} has no real images ({n_fake} fake); "
            "self-blended fakes are made from real faces"
        )


def served_counts(index: Index, settings: Mapping[str, Any], root: str) -> dict[str, dict[str, int]]:
    """Images per split and class as the loaders serve them: in a blended split `fake` is the self-blends (one
    per real, also counted as `self_blended`) and the set's own fakes there are `dataset_fakes_unused`."""
    counts = describe(index)
    for split in blended_splits(settings):
        if index.get(
            split
        ):  # an empty split (use_all_for_test) is refused, as always, when its loader is built
            real, fake = counts[split]["real"], counts[split]["fake"]
            _require_reals(real, fake, split, root)
            counts[split] = {"real": real, "fake": real, "self_blended": real, "dataset_fakes_unused": fake}
    return counts


def report_self_blend(index: Index, settings: Mapping[str, Any], root: str) -> None:
    """At set-up: refuse a blended split without reals, log what each split serves, and warn about a split that
    still serves the set's own images (valid with `val_fakes=dataset`, test) but lacks a class."""
    counts = served_counts(index, settings, root)
    blended = blended_splits(settings)
    for split, c in counts.items():
        if split in blended and index.get(split):
            log.info(
                "data.fakes=self_blend: %s %d real + %d self-blended (the set's %d %s fakes unused)",
                *(split, c["real"], c["self_blended"], c["dataset_fakes_unused"], split),
            )
        elif index.get(split):
            note = " (data.self_blend.val_fakes=dataset)" if split == "valid" else ""
            log.info(
                "data.fakes=self_blend: %s %d real + %d fake, the set's own%s",
                split,
                c["real"],
                c["fake"],
                note,
            )
    warn_single_class_splits({s: v for s, v in index.items() if s not in blended}, root)


def self_blend_dataset(
    samples: Sequence[Sample],
    split: str,
    root: str,
    transform: Any,
    settings: Mapping[str, Any],
    fixed_seed: int = 0,
    on_bad_image: str = "skip",
    decoder: str = "auto",
    cropper: FaceCropper | None = None,
) -> SelfBlendDataset:
    """The dataset of a blended split: its reals and one self-blend of each (the split's own fakes unused).
    With `cropper` (data.face_crop) both are aligned crops and the masks come from the crops' own landmarks."""
    reals = [(path, target) for path, target in samples if target == 0]
    _require_reals(len(reals), len(samples) - len(reals), split, root)
    landmarks = None
    if settings.get("mask", "landmarks") == "landmarks":
        paths = [path for path, _ in reals]
        landmarks = face_landmarks(paths, split) if cropper is None else crop_landmarks(cropper, paths, split)
    blender = SelfBlender(
        **{key: value for key, value in settings.items() if key not in ("val_fakes", "mask")}
    )
    return SelfBlendDataset(reals, transform, blender, fixed_seed, on_bad_image, decoder, landmarks, cropper)


def _log_found(split: str, found: int, total: int, where: str) -> None:
    missing = total - found
    log.log(
        logging.WARNING if missing else logging.INFO,
        "data.self_blend.mask=landmarks: %s %d of %d reals with a face (%s); %d without one use the "
        "face-box ellipse (data.self_blend.face_box)",
        *(split, found, total, where, missing),
    )


def crop_landmarks(cropper: FaceCropper, paths: Sequence[str], split: str) -> dict[str, np.ndarray]:
    """path -> the 5 landmarks of its aligned crop, in crop pixels: the detection `data.face_crop` made at
    setup, mapped through the crop's matrix (no second detection). A real without a face is used whole and
    keeps the face-box ellipse in the whole photo: counted, logged."""
    found = {path: cropper.crop_landmarks(path) for path in paths}
    kept = {path: marks for path, marks in found.items() if marks is not None}
    _log_found(split, len(kept), len(paths), "data.face_crop, mapped into the aligned crop")
    return kept


def face_landmarks(paths: Sequence[str], split: str) -> dict[str, np.ndarray]:
    """path -> the 5 CenterFace landmarks of its largest face (`deepfake_lightning.faces.landmarks_for`: detected
    once, cached on disk by the file's SHA-256). A real without a face keeps the face-box ellipse: counted, logged."""
    try:
        found = landmarks_for(paths, load=load_rgb)
    except FaceDetectorError as err:
        raise ConfigError(
            f"data.self_blend.mask=landmarks: {err} (or set data.self_blend.mask=face_box)"
        ) from None
    kept = {path: marks for path, marks in zip(paths, found, strict=True) if np.isfinite(marks).all()}
    _log_found(split, len(kept), len(paths), "CenterFace")
    return kept
