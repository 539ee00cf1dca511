"""The config schema: type, range and choices of every data, model and trainer setting, declared once.

Start-up validation (`utils/config_validation.py`) checks a composed config against these models before anything
is built. The classes that take the same values from Python (`DeepfakeDataModule`, `DetectorModule`,
`SpatialAttention`, `MLPHead`, `BinaryLoss`, `ImageDataset`, `load_rgb`, ...) check their arguments with the same
models, so a bad value gives the same one line either way: ``key=value: expected what``.

A field declares its type (strict: no ``"1"`` for 1, no 1 for true), its range or choices, and in
``description`` the words that follow ``expected`` in the message. Unknown keys are refused, with the nearest
known one suggested.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import numbers
import types
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from deepfake_lightning.faces.detector import DETECTORS
from deepfake_lightning.faces.types import ALIGN_MODES

MIN_IMAGE_SIZE = 32
LAYOUTS = ("faces140k", "folder")
PREPROCESS = ("resize", "center_crop")
DECODERS = ("auto", "pil", "simplejpeg")
ON_BAD_IMAGE = ("skip", "raise")
AUGMENT_ON = ("cpu", "device")
ATTENTION_KINDS = ("channel_gate", "spatial", "softmax")
LOSSES = ("focal", "bce")
NONFINITE_LOSS = ("stop", "skip")
AGGREGATES = ("mean", "max", "top_k_mean")  # frame scores -> a video score (evaluation/aggregate.py)
VIDEO_LAYOUTS = ("auto", "ffpp", "celebdf", "dfdc", "csv")  # prepare's inputs (data/video_dataset/layouts.py)
VIDEO_SUBSETS = ("all", "train", "test")
CROP_FORMATS = ("png", "jpg")
TUNE_MODES = ("all", "frozen", "ln", "last_k")  # models/tuning.py
FOLDER_ONLY = ("labels_csv", "group_by", "max_per_class")
FAKES = ("dataset", "self_blend")
VAL_FAKES = ("self_blend", "dataset")
BLEND_MASKS = ("landmarks", "face_box")
# data.face_crop: a photo without a face is used whole | dropped (counted, logged)
ON_NO_FACE = ("full", "skip")
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
DEFAULT_BACKBONE = "mobilenet_v2"  # model.backbone.name: the torchvision default, or timm:<model>
TIMM_PREFIX = "timm:"

S = TypeVar("S", bound="Settings")


class ConfigError(ValueError):
    """One invalid config value; the message is one line naming the key, the value and what is expected."""


def words(choices: Sequence[str]) -> str:
    """("a", "b", "c") -> "a, b or c", as the messages list choices."""
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


def _holds(ok: Callable[[Any], bool]) -> AfterValidator:
    """A field check beyond type and bounds; the field's description says what is expected."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise ValueError("out of range")
        return value

    return AfterValidator(check)


def _probability(default: float | None = None) -> Any:
    return Field(default, ge=0, le=1, description="a probability in [0, 1]")


# The decision threshold (an image is fake iff p_fake >= threshold), declared once: the model's, predict's,
# predict_video's and serve's `threshold`, a calibration record's, a fixed threshold rule and compute_metrics
# all take this range. 0 and 1 are allowed: a threshold fitted to "flag nothing" is 1.
Threshold = Annotated[float, Field(ge=0, le=1)]
THRESHOLD_WORDS = "a number in [0, 1]"


def check_threshold(value: Any, key: str = "threshold") -> float:
    """`value` as a float when it is a number in the threshold range, else `ConfigError` naming `key`."""
    try:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError("not a number")
        return _THRESHOLD.validate_python(float(value))
    except ValueError:  # pydantic's ValidationError is one
        raise ConfigError(f"{key}={value!r}: expected {THRESHOLD_WORDS}") from None


def check_freeze_first_n(value: Any, n_tensors: int, backbone: str = "") -> None:
    """`model.backbone.freeze_first_n` against the tensor count of the backbone: at start-up, counted in advance
    (`config_validation.validate_backbone`); in `FeatureBackbone`, on the built extractor."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= n_tensors:
        return
    if backbone in ("", "mobilenet_v2"):
        what = "MobileNetV2.features"
    else:
        what = f"the timm {backbone.removeprefix('timm:')} feature extractor"
    raise ConfigError(
        f"model.backbone.freeze_first_n={value!r}: expected an integer in 0..{n_tensors} "
        f"(parameter tensors of {what})"
    )


def import_target(target: str) -> Any:
    """The class a `_target_` names (`package.module.Class`)."""
    module, _, name = target.rpartition(".")
    if not module:
        raise ValueError("expected package.module.Class")
    return getattr(importlib.import_module(module), name)


# --- checking and the one-line message ------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Resolved plain containers (DictConfig/ListConfig anywhere inside become dicts/lists); tuples stay."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (also inside `X | None`), else None (a leaf)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        return next(filter(None, (_submodel(arg) for arg in get_args(annotation))), None)
    return None


def unknown_key(key: str, value: Any, known: Sequence[str], expected: str | None = None) -> str:
    """`data.batchsize=64: unknown key; did you mean batch_size?` (else what is expected: by default the keys)."""
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"expected {expected or 'one of ' + ', '.join(known)}"
    return f"{key}={value!r}: unknown key; {hint}"


def _one_line(schema: type[Settings], data: Any, error: Mapping[str, Any]) -> str:
    """Render pydantic's first error as `key=value: expected ...`, the words taken from the field's description."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # a check across fields wrote its own line
        return str(cause)
    model: type[BaseModel] | None = schema
    parts = [schema.config_key] if schema.config_key else []
    value, field = data, None
    for part in error["loc"]:
        if model is None:  # past the leaf: list indices, union members
            break
        parts.append(str(part))
        value = value.get(part) if isinstance(value, Mapping) else None
        if part not in model.model_fields:
            return unknown_key(".".join(parts), value, list(model.model_fields))
        field = model.model_fields[part]
        model = _submodel(field.annotation)
    key = ".".join(parts)
    expected = field.description if field is not None and field.description else error["msg"].lower()
    if error["type"] == "missing":
        return f"{key}: missing; expected {expected}"
    return f"{key}={value!r}: expected {expected}"


class Settings(BaseModel):
    """A config node: strict types, no unknown keys; `config_key` is where the node sits in the config."""

    model_config = ConfigDict(strict=True, extra="forbid")
    config_key: ClassVar[str] = ""

    @classmethod
    def check(cls: type[S], values: Mapping[str, Any]) -> S:
        """Validate a node (a dict or DictConfig; Hydra's `_target_`-style keys are left out) or raise
        `ConfigError` with the first invalid value."""
        data = {key: value for key, value in plain(values).items() if key not in HYDRA_KEYS}
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(_one_line(cls, data, err.errors()[0])) from None

    @classmethod
    def check_value(cls, name: str, value: Any) -> Any:
        """Validate one field on its own (a function that takes just this value, e.g. `load_rgb(decoder=)`)."""
        data = plain(value)
        try:
            return _field_adapter(cls, name).validate_python(data)
        except ValidationError as err:
            error = err.errors()[0]
            raise ConfigError(_one_line(cls, {name: data}, {**error, "loc": (name, *error["loc"])})) from None


_THRESHOLD: TypeAdapter[float] = TypeAdapter(Threshold)


@cache
def _field_adapter(schema: type[Settings], name: str) -> TypeAdapter:
    field = schema.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, field], config=ConfigDict(strict=True))


# --- data -------------------------------------------------------------------------------------------------------


class Normalize(Settings):
    config_key: ClassVar[str] = "data.normalize"
    mean: Annotated[Sequence[float], _holds(lambda v: len(v) == 3)] = Field(description="3 numbers (R, G, B)")
    std: Annotated[Sequence[float], _holds(lambda v: len(v) == 3 and min(v) > 0)] = Field(
        description="3 numbers > 0 (R, G, B)"
    )


# Group fields default to None, which is never validated: a group given in part (`{"enabled": true, "p": 1}`) is
# checked for what it holds; an explicit null is refused.
PAIR = "[low, high] with low <= high"
IntPair = Annotated[Sequence[int], _holds(lambda v: len(v) == 2 and v[0] <= v[1])]
NumberPair = Annotated[Sequence[float], _holds(lambda v: len(v) == 2 and v[0] <= v[1])]


class Geometric(Settings):
    enabled: bool = Field(None, description="true or false")
    hflip_p: float = _probability()
    rotate_limit: float = Field(None, ge=0, le=180, description="degrees in 0..180")
    scale: NumberPair = Field(None, description=PAIR)
    translate: float = Field(None, ge=0, le=1, description="a fraction of the image side in [0, 1]")
    affine_p: float = _probability()
    perspective_scale: float = Field(None, ge=0, le=1, description="a number in [0, 1]")
    perspective_p: float = _probability()


class Colour(Settings):
    enabled: bool = Field(None, description="true or false")
    p: float = _probability()
    brightness: float = Field(None, ge=0, description="a number >= 0")
    contrast: float = Field(None, ge=0, description="a number >= 0")
    saturation: float = Field(None, ge=0, description="a number >= 0")
    hue: float = Field(None, ge=0, le=0.5, description="a number in [0, 0.5]")


class Erasing(Settings):
    enabled: bool = Field(None, description="true or false")
    p: float = _probability()
    num_holes_range: IntPair = Field(None, description=PAIR)
    hole_size_range: NumberPair = Field(None, description=PAIR)


class Grayscale(Settings):
    enabled: bool = Field(None, description="true or false")
    p: float = _probability()


class Jpeg(Settings):
    enabled: bool = Field(None, description="true or false")
    p: float = _probability()
    quality_range: Annotated[Sequence[int], _holds(lambda v: len(v) == 2 and 1 <= v[0] <= v[1] <= 100)] = (
        Field(None, description="[low, high] within 1..100")
    )


class Blur(Settings):
    enabled: bool = Field(None, description="true or false")
    p: float = _probability()
    sigma_range: NumberPair = Field(None, description=PAIR)


class Augment(Settings):
    """`data.augment`: train-time augmentation groups (data/transforms.py), each switchable."""

    config_key: ClassVar[str] = "data.augment"
    random_crop: bool = Field(False, description="true or false")
    geometric: Geometric | None = None
    colour: Colour | None = None
    erasing: Erasing | None = None
    grayscale: Grayscale | None = None
    jpeg: Jpeg | None = None
    blur: Blur | None = None


class SelfBlend(Settings):
    """`data.self_blend`: how `data.fakes=self_blend` makes fakes from reals (data/self_blend.py)."""

    config_key: ClassVar[str] = "data.self_blend"
    val_fakes: Literal[VAL_FAKES] = Field("self_blend", description=words(VAL_FAKES))
    mask: Literal[BLEND_MASKS] = Field("landmarks", description=words(BLEND_MASKS))
    face_box: Annotated[
        Sequence[float],
        _holds(lambda v: len(v) == 4 and 0 <= v[0] < v[2] <= 1 and 0 <= v[1] < v[3] <= 1),
    ] = Field(
        (0.2, 0.15, 0.8, 0.9),
        description="[x0, y0, x1, y1], fractions of the image with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1",
    )
    blend_ratios: Annotated[Sequence[float], _holds(lambda v: len(v) >= 1 and all(0 < r <= 1 for r in v))] = (
        Field((0.25, 0.5, 0.75, 1.0, 1.0, 1.0), description="a non-empty list of numbers in (0, 1]")
    )
    elastic_p: float = _probability(0.5)


class FaceCrop(Settings):
    """`data.face_crop`: detect and align the face of photos that are not crops yet (deepfake_lightning/faces)."""

    config_key: ClassVar[str] = "data.face_crop"
    enabled: bool = Field(False, description="true or false")
    detector: Literal[DETECTORS] = Field("centerface", description=words(DETECTORS))
    alignment: Literal[ALIGN_MODES] = Field("landmarks", description=words(ALIGN_MODES))
    scale: float = Field(1.3, ge=1, le=4, description="a number in [1, 4]")
    size: int = Field(256, ge=16, le=2048, description="an integer in 16..2048")
    on_no_face: Literal[ON_NO_FACE] = Field("full", description=words(ON_NO_FACE))
    cache_dir: str | Path | None = Field(None, description="null or a folder path")


class LoaderSettings(Settings):
    """The `data.*` keys every data config shares (conf/data/_base.yaml): decoding, transforms and the loader."""

    config_key: ClassVar[str] = "data"
    image_size: int = Field(224, ge=MIN_IMAGE_SIZE, description=f"an integer >= {MIN_IMAGE_SIZE}")
    batch_size: int = Field(64, ge=1, description="an integer >= 1")
    num_workers: int = Field(2, ge=0, le=256, description="an integer in 0..256")
    preprocess: Literal[PREPROCESS] = Field("resize", description=words(PREPROCESS))
    reencode_jpeg_quality: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="null or an integer in 1..100"
    )
    augment: Augment | None = None
    normalize: Normalize | None = None
    on_bad_image: Literal[ON_BAD_IMAGE] = Field("skip", description=words(ON_BAD_IMAGE))
    verify: bool = Field(False, description="true or false")
    pin_memory: bool = Field(True, description="true or false")
    persistent_workers: bool = Field(True, description="true or false")
    prefetch_factor: Annotated[int, Field(ge=1)] | None = Field(4, description="null or an integer >= 1")
    decoder: Literal[DECODERS] = Field("auto", description=words(DECODERS))
    channels_last: bool = Field(True, description="true or false")
    check_leakage: bool = Field(False, description="true or false")
    augment_on: Literal[AUGMENT_ON] = Field("cpu", description=words(AUGMENT_ON))
    fakes: Literal[FAKES] = Field("dataset", description=words(FAKES))
    self_blend: SelfBlend | None = None
    face_crop: FaceCrop | None = None


class DataSettings(LoaderSettings):
    """`data.*` of `DeepfakeDataModule` (faces140k and folder layouts); defaults are the constructor's."""

    root: str | Path = Field(description="a folder path")
    layout: Literal[LAYOUTS] = Field("faces140k", description=words(LAYOUTS))
    split_ratios: Annotated[
        Sequence[float], _holds(lambda v: len(v) == 3 and min(v) >= 0 and abs(sum(v) - 1) < 1e-6)
    ] = Field((0.8, 0.1, 0.1), description="3 non-negative numbers summing to 1 (train, valid, test)")
    split_seed: int = Field(0, description="an integer")
    use_all_for_test: bool = Field(False, description="true or false")
    labels_csv: Annotated[str | Path, _holds(lambda v: str(v).strip() != "")] | None = Field(
        None, description="null or a CSV path"
    )
    group_by: Annotated[str, _holds(lambda v: v.strip() != "")] | None = Field(
        None, description="null or a CSV column name"
    )
    max_per_class: Annotated[int, Field(ge=1)] | None = Field(None, description="null or an integer >= 1")

    @model_validator(mode="after")
    def _folder_only(self) -> DataSettings:
        """Grouping and capping split a root/{real,fake} folder; the other layouts come split."""
        for key in FOLDER_ONLY:
            value = getattr(self, key)
            if value is not None and self.layout != "folder":
                raise ConfigError(
                    f"data.{key}={value!r}: applies to data=folder only; "
                    f"{self.layout} data has given train/valid/test splits"
                )
        return self

    @model_validator(mode="after")
    def _self_blend_landmarks_on_crops(self) -> DataSettings:
        """On aligned crops a self-blend's landmark mask comes from the crop's own detection (data/self_blend.py):
        a detector without landmarks (Haar) has none to give, so that pairing is refused rather than every mask
        silently falling back to the face-box ellipse."""
        face_crop, mask = self.face_crop, self.self_blend.mask if self.self_blend else "landmarks"
        on_crops = self.fakes == "self_blend" and face_crop is not None and face_crop.enabled
        if on_crops and mask == "landmarks" and face_crop.detector == "haar":
            raise ConfigError(
                "data.face_crop.detector=haar with data.fakes=self_blend: the Haar detector gives no landmarks "
                "for the blend mask (data.self_blend.mask=landmarks); use data.face_crop.detector=centerface "
                "or data.self_blend.mask=face_box"
            )
        return self


class SyntheticDataSettings(DataSettings):
    """`data=synthetic`: `SyntheticDataModule` generates the set under `out_dir` and reads it as faces140k."""

    root: None = Field(None, description="null (the synthetic set lives under data.out_dir)")
    out_dir: str | Path = Field(description="a folder path")
    n_train: int = Field(1000, ge=1, description="an integer >= 1 (images per class)")
    n_valid: int = Field(200, ge=1, description="an integer >= 1 (images per class)")
    n_test: int = Field(200, ge=1, description="an integer >= 1 (images per class)")
    generated_size: int = Field(64, description="an integer (pixels)")
    seed: int = Field(0, description="an integer")
    generator_workers: int = Field(1, ge=1, description="an integer >= 1")


class StreamingDataSettings(LoaderSettings):
    """`data=streaming`: `StreamingDataModule` reads the shards `python -m deepfake_lightning.data.shard` wrote;
    the split, labels and groups are the shards' own, so no key of the folder split applies."""

    uri: str = Field(
        description="a folder written by python -m deepfake_lightning.data.shard, or its s3:// (gs://, ...) URL"
    )
    cache_dir: str | Path | None = Field(
        None, description="null or a folder (where remote chunks are cached)"
    )
    max_cache_size: Annotated[str, _holds(lambda v: v.strip() != "")] | None = Field(
        None, description="null (litdata's default) or a size such as 50GB"
    )
    persistent_workers: Literal[False] = Field(
        False,
        description="false (streaming workers restart every epoch: that is how they learn the epoch and a resume)",
    )
    verify: Literal[False] = Field(
        False, description="false (decode the images once when writing the shards: data.verify=true on shard)"
    )
    check_leakage: Literal[False] = Field(
        False, description="false (check it when writing the shards: data.check_leakage=true on shard)"
    )
    fakes: Literal["dataset"] = Field(
        "dataset", description="dataset (self_blend blends fakes from a folder's reals: use data=folder)"
    )


class ShardSettings(Settings):
    """The top-level keys of `python -m deepfake_lightning.data.shard` (conf/shard.yaml)."""

    out: str | Path = Field(description="a local folder to write the shards into")
    splits: str | Path | None = Field(None, description="null or a splits.csv (path, split, label, group)")
    chunk_bytes: Annotated[str, _holds(lambda v: v.strip() != "")] | Annotated[int, Field(ge=1)] = Field(
        "64MB", description="a size such as 64MB, or a number of bytes >= 1"
    )
    num_workers: int = Field(2, ge=1, le=256, description="an integer in 1..256")
    shuffle_seed: int = Field(0, ge=0, description="an integer >= 0")
    overwrite: bool = Field(False, description="true or false")


MIXES = ("concat", "equal")


class MultiDataSettings(DataSettings):
    """`data=multi`: `MultiSourceDataModule`: the multi keys and the shared ones. Each source node is checked as
    the data config it would be alone, its errors named ``data.sources.NAME.key``, by
    `data/multi_sources.check_sources` (here it would make this module import the data package)."""

    root: None = Field(None, description="absent (each source has its own data.sources.NAME.root)")
    layout: Literal[LAYOUTS] = Field("folder", description=words(LAYOUTS))
    sources: dict[str, Any] = Field(description="a mapping {name: {root: DIR, ...}}")
    mix: Literal[MIXES] | dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        "concat", description="concat, equal or {source: fraction} (fractions in [0, 1] summing to 1)"
    )
    epoch_size: Annotated[int, Field(ge=1)] | None = Field(None, description="null or an integer >= 1")
    held_out: str | list[str] | None = Field(None, description="null, a source name or a list of them")


class UpdateSettings(Settings):
    """`update.*` of `+experiment=update`: fine-tune a trained detector on new data (`deepfake_lightning/update`)."""

    config_key: ClassVar[str] = "update"
    replay_fraction: float = Field(
        0.2, ge=0, lt=1, description="a number in [0, 1) (the old data's share of every training epoch)"
    )


# --- model ------------------------------------------------------------------------------------------------------


def _backbone_name_ok(name: str) -> bool:
    """`models.backbones.timm_model_name` splits a name this rule accepts."""
    return name == DEFAULT_BACKBONE or (name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX))


class BackboneSettings(Settings):
    """`model.backbone`; `freeze_first_n`'s upper bound is the backbone's tensor count (`check_freeze_first_n`)."""

    config_key: ClassVar[str] = "model.backbone"
    name: Annotated[str, _holds(_backbone_name_ok)] = Field(
        DEFAULT_BACKBONE, description=f"{DEFAULT_BACKBONE} or {TIMM_PREFIX}<model name> (e.g. timm:resnet18)"
    )
    weights: str | Path | None = Field(
        None,
        description="null, a torchvision weights name, a registry name (dinov2_vits14, efficientnet_lite2), "
        "a state_dict file, or pretrained (timm)",
    )
    sha256: str | None = Field(None, description="null or the SHA-256 hex digest of the weights file")
    freeze_first_n: int = Field(0, description="an integer in 0..N (parameter tensors of the backbone)")
    tune: Literal[TUNE_MODES] = Field("all", description=words(TUNE_MODES))
    tune_last_k: Annotated[int, Field(ge=1)] | None = Field(
        None, description="null or an integer >= 1 (blocks that train with tune=last_k)"
    )

    @model_validator(mode="after")
    def _tuning(self) -> BackboneSettings:
        """`tune` says what trains; `freeze_first_n` is the older, finer knob of `tune=all` only."""
        if self.tune == "last_k" and self.tune_last_k is None:
            raise ConfigError(
                "model.backbone.tune_last_k=None: expected an integer >= 1 with model.backbone.tune=last_k"
            )
        if self.tune != "last_k" and self.tune_last_k is not None:
            raise ConfigError(
                f"model.backbone.tune_last_k={self.tune_last_k!r}: applies to model.backbone.tune=last_k only "
                f"(tune={self.tune}); set it to null"
            )
        if self.tune != "all" and self.freeze_first_n:
            raise ConfigError(
                f"model.backbone.freeze_first_n={self.freeze_first_n!r}: applies to model.backbone.tune=all only "
                f"(tune={self.tune} decides what trains); set it to 0"
            )
        return self


class AttentionSettings(Settings):
    """`model.attention` of `SpatialAttention` (its constructor's defaults)."""

    config_key: ClassVar[str] = "model.attention"
    hidden: int = Field(256, ge=1, description="an integer >= 1")
    enabled: bool = Field(True, description="true or false")
    kind: Literal[ATTENTION_KINDS] = Field("channel_gate", description=words(ATTENTION_KINDS))


class HeadSettings(Settings):
    """`model.head` of `MLPHead`: one dropout per Linear layer."""

    config_key: ClassVar[str] = "model.head"
    hidden: Annotated[Sequence[int], _holds(lambda v: all(width >= 1 for width in v))] = Field(
        (512, 256), description="a list of positive integers"
    )
    dropout: Annotated[Sequence[float], _holds(lambda v: all(0 <= p < 1 for p in v))] = Field(
        (0.5, 0.35, 0.25), description="values in [0, 1)"
    )

    @model_validator(mode="after")
    def _one_dropout_per_layer(self) -> HeadSettings:
        if len(self.dropout) != len(self.hidden) + 1:
            raise ConfigError(
                f"model.head.dropout={list(self.dropout)!r}: expected {len(self.hidden) + 1} values (one per "
                f"layer of model.head.hidden={list(self.hidden)!r})"
            )
        return self


class LossSettings(Settings):
    """`model.loss` of `BinaryLoss`."""

    config_key: ClassVar[str] = "model.loss"
    name: Literal[LOSSES] = Field("focal", description=words(LOSSES))
    alpha: Annotated[float, _holds(lambda v: v == -1 or 0 <= v <= 1)] = Field(
        0.5, description="a value in [0, 1], or -1 for no weighting"
    )
    gamma: float = Field(2.0, ge=0, description="a number >= 0")


class OptimizerSettings(Settings):
    """`model.optimizer`: a partial torch optimizer; any other argument of it passes through."""

    model_config = ConfigDict(extra="allow")
    config_key: ClassVar[str] = "model.optimizer"
    lr: float = Field(None, gt=0, lt=10, description="a number in (0, 10)")
    weight_decay: float = Field(None, ge=0, description="a number >= 0")


class ModelSettings(Settings):
    """`model.*` of `DetectorModule`; a section left null takes its class's defaults."""

    config_key: ClassVar[str] = "model"
    backbone: BackboneSettings | None = None
    attention: AttentionSettings | None = None
    head: HeadSettings | None = None
    loss: LossSettings | None = None
    optimizer: OptimizerSettings | None = None
    scheduler: dict[str, Any] | None = Field(None, description="null or a scheduler config")
    threshold: Threshold = Field(0.5, description=THRESHOLD_WORDS)
    preprocessing: dict[str, Any] | None = Field(None, description="null or the eval preprocessing")
    nonfinite_loss: Literal[NONFINITE_LOSS] = Field("stop", description=words(NONFINITE_LOSS))
    pretrained: dict[str, Any] | None = Field(
        None, description="null or where the backbone's pretrained weights came from (recorded by training)"
    )


# --- evaluation ---------------------------------------------------------------------------------------------------


class FrameAggregation(Settings):
    """How frame scores become one video score (`evaluation/aggregate.py`): `predict_video`'s top-level keys."""

    aggregate: Literal[AGGREGATES] = Field("mean", description=words(AGGREGATES))
    top_k: int = Field(5, ge=1, description="an integer >= 1")


class EvalSettings(FrameAggregation):
    """`eval.*` of `python -m deepfake_lightning.eval`: scoring groups of test images (videos) as a whole."""

    config_key: ClassVar[str] = "eval"
    aggregate_by: Annotated[str, _holds(lambda v: v.strip() != "")] | None = Field(
        None, description="null or a labels-CSV column name (e.g. video)"
    )


ExistingFile = Annotated[str | Path, _holds(lambda v: Path(v).is_file())]
ExistingFolder = Annotated[str | Path, _holds(lambda v: Path(v).is_dir())]


class RunKeys(Settings):
    """What Hydra composes into every entry-point config besides its own keys: `task_name` and the `paths`
    group (Hydra resolves and checks those itself)."""

    task_name: str = Field("run", description="a name")
    paths: dict[str, Any] | None = Field(None, description="the paths group")


class PrepareSettings(RunKeys):
    """`python -m deepfake_lightning.prepare`: a folder of videos -> a folder set of aligned face crops."""

    input: ExistingFolder = Field(description="an existing folder of videos")
    output: str | Path = Field(
        description="the folder to write the face crops, labels.csv and summary.json to"
    )
    labels: ExistingFile | None = Field(
        None,
        description="null or an existing labels CSV (video,label[,group]), DFDC metadata.json or Celeb-DF "
        "test list",
    )
    layout: Literal[VIDEO_LAYOUTS] = Field("auto", description=words(VIDEO_LAYOUTS))
    subset: Literal[VIDEO_SUBSETS] = Field(
        "all", description=words(VIDEO_SUBSETS) + " (Celeb-DF's test list)"
    )
    frames: int = Field(32, ge=1, description="an integer >= 1 (frames per video, evenly spaced)")
    face: dict[str, Any] | None = Field(
        None, description="a face pipeline spec: detector, alignment, scale, size and detector options"
    )
    image_format: Literal[CROP_FORMATS] = Field("png", description=words(CROP_FORMATS))
    jpeg_quality: int = Field(95, ge=1, le=100, description="an integer in 1..100")
    workers: Annotated[int, Field(ge=0)] | None = Field(
        None, description="null (one process per CPU core), 0 (this process) or an integer >= 1"
    )
    progress: bool = Field(True, description="true or false")


# --- feature cache ----------------------------------------------------------------------------------------------


class FeatureCacheSettings(Settings):
    """`feature_cache.*` (conf/feature_cache): frozen encoder outputs computed once per image, for training only."""

    config_key: ClassVar[str] = "feature_cache"
    enabled: bool = Field(False, description="true or false")
    dir: Annotated[str | Path, _holds(lambda v: str(v).strip() != "")] = Field(description="a folder path")
    views: int = Field(
        0, ge=0, le=64, description="an integer in 0..64 (0: no augmentation; N: N cached augmented views)"
    )
    views_seed: int = Field(0, description="an integer")
    batch_size: Annotated[int, Field(ge=1)] | None = Field(None, description="null or an integer >= 1")


# --- trainer ----------------------------------------------------------------------------------------------------


class TrainerSettings(Settings):
    """`trainer.*`: the values checked here, and any other argument of the Trainer class (a misspelt one is named)."""

    model_config = ConfigDict(extra="allow")
    config_key: ClassVar[str] = "trainer"
    max_epochs: Annotated[int, _holds(lambda v: v >= 1 or v == -1)] | None = Field(
        None, description="an integer >= 1 (or -1)"
    )
    gradient_clip_val: Annotated[float, Field(ge=0)] | None = Field(
        None, description="a number >= 0 (0 disables clipping)"
    )

    @classmethod
    def check(cls, values: Mapping[str, Any]) -> TrainerSettings:
        """As `Settings.check`; first, every key must be an argument of the `_target_` Trainer class."""
        data = plain(values)
        target = str(data.get("_target_", "lightning.pytorch.Trainer"))
        known = trainer_arguments(target)
        for key, value in data.items():
            if known is not None and key not in known and key not in HYDRA_KEYS:
                raise ConfigError(
                    unknown_key(f"trainer.{key}", value, sorted(known), f"an argument of {target}")
                )
        return super().check(data)


@cache
def trainer_arguments(target: str) -> frozenset[str] | None:
    """Argument names of the Trainer class `target`; None when it takes **kwargs (or cannot be imported)."""
    try:
        parameters = inspect.signature(import_target(target).__init__).parameters
    except (ImportError, AttributeError, ValueError):  # the target itself is reported when it is instantiated
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return frozenset(parameters) - {"self"}
