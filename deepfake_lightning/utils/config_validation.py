"""Start-up checks of config values, so a typo fails in a second with the key named, not an hour in."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MIN_IMAGE_SIZE = 32
BACKBONE_TENSORS = 156  # parameter tensors in torchvision MobileNetV2.features


class ConfigError(ValueError):
    """One invalid config value; the message is one line naming the key and what is allowed."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], allowed: str) -> None:
    value = _get(cfg, key)
    if value is None:
        return
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"{key}={value!r}: expected {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and 0 <= value <= 1


def validate_data(cfg: DictConfig) -> None:
    _check(
        cfg,
        "data.image_size",
        lambda v: _is_int(v) and v >= MIN_IMAGE_SIZE,
        f"an integer >= {MIN_IMAGE_SIZE}",
    )
    _check(cfg, "data.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _check(cfg, "data.num_workers", lambda v: _is_int(v) and 0 <= v <= 256, "an integer in 0..256")
    _check(cfg, "data.on_bad_image", lambda v: v in ("skip", "raise"), "skip or raise")
    _check(cfg, "data.preprocess", lambda v: v in ("resize", "center_crop"), "resize or center_crop")
    _check(cfg, "data.layout", lambda v: v in ("faces140k", "folder"), "faces140k or folder")
    _check(cfg, "data.decoder", lambda v: v in ("auto", "pil", "simplejpeg"), "auto, pil or simplejpeg")
    _check(cfg, "data.augment_on", lambda v: v in ("cpu", "device"), "cpu or device")
    _check(
        cfg,
        "data.reencode_jpeg_quality",
        lambda v: _is_int(v) and 1 <= v <= 100,
        "null or an integer in 1..100",
    )
    for flag in ("data.verify", "data.check_leakage"):
        _check(cfg, flag, _is_bool, "true or false")
    _check(
        cfg,
        "data.split_ratios",
        lambda v: len(v) == 3 and all(r >= 0 for r in v) and abs(sum(v) - 1) < 1e-6,
        "3 non-negative numbers summing to 1 (train, valid, test)",
    )
    for group, settings in (_get(cfg, "data.augment") or {}).items():
        if isinstance(settings, DictConfig):
            for name in ("p", "hflip_p", "affine_p", "perspective_p"):
                _check(cfg, f"data.augment.{group}.{name}", _probability, "a probability in [0, 1]")
    _check(
        cfg,
        "data.augment.jpeg.quality_range",
        lambda v: 1 <= v[0] <= v[1] <= 100,
        "[low, high] within 1..100",
    )
    root = _get(cfg, "data.root")
    if (
        root is not None
        and "synthetic" not in str(_get(cfg, "data._target_")).lower()
        and not Path(root).is_dir()
    ):
        raise ConfigError(
            f"data.root={root!r}: folder not found; for faces140k expected "
            "real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}, for folder data root/{real,fake}"
        )
    validate_grouping(cfg)


def validate_grouping(cfg: DictConfig) -> None:
    """`data.labels_csv`, `data.group_by`, `data.max_per_class`: folder data only; a needed CSV must exist."""
    _check(cfg, "data.labels_csv", lambda v: isinstance(v, str) and v.strip() != "", "null or a CSV path")
    _check(
        cfg, "data.group_by", lambda v: isinstance(v, str) and v.strip() != "", "null or a CSV column name"
    )
    _check(cfg, "data.max_per_class", lambda v: _is_int(v) and v >= 1, "null or an integer >= 1")
    synthetic = "synthetic" in str(_get(cfg, "data._target_")).lower()
    layout = "faces140k" if synthetic else _get(cfg, "data.layout")
    for key in ("data.labels_csv", "data.group_by", "data.max_per_class"):
        value = _get(cfg, key)
        if value is not None and layout != "folder":
            raise ConfigError(
                f"{key}={value!r}: applies to data=folder only; {layout} data has given train/valid/test splits"
            )
    root, group_by = _get(cfg, "data.root"), _get(cfg, "data.group_by")
    if root is not None and layout == "folder" and Path(root).is_dir():
        from deepfake_lightning.data.index import DatasetLayoutError
        from deepfake_lightning.data.labels_csv import resolve_labels_csv

        try:
            resolve_labels_csv(Path(root), _get(cfg, "data.labels_csv"), group_by)
        except DatasetLayoutError as err:
            raise ConfigError(str(err)) from None


def validate_model(cfg: DictConfig) -> None:
    hidden = _get(cfg, "model.head.hidden")
    _check(
        cfg,
        "model.head.hidden",
        lambda v: all(_is_int(w) and w >= 1 for w in v),
        "a list of positive integers",
    )
    _check(cfg, "model.head.dropout", lambda v: all(0 <= p < 1 for p in v), "values in [0, 1)")
    if hidden is not None:
        _check(
            cfg,
            "model.head.dropout",
            lambda v: len(v) == len(hidden) + 1,
            f"{len(hidden) + 1} values (one per layer)",
        )
    _check(cfg, "model.attention.hidden", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _check(
        cfg,
        "model.attention.kind",
        lambda v: v in ("channel_gate", "spatial", "softmax"),
        "channel_gate, spatial or softmax",
    )
    validate_backbone(cfg)
    _check(cfg, "model.loss.name", lambda v: v in ("focal", "bce"), "focal or bce")
    _check(
        cfg, "model.loss.alpha", lambda v: v == -1 or 0 <= v <= 1, "a value in [0, 1], or -1 for no weighting"
    )
    _check(cfg, "model.loss.gamma", lambda v: v >= 0, "a number >= 0")
    _check(cfg, "model.optimizer.lr", lambda v: 0 < v < 10, "a number in (0, 10)")
    _check(cfg, "model.optimizer.weight_decay", lambda v: v >= 0, "a number >= 0")
    _check(cfg, "model.threshold", lambda v: 0 < v < 1, "a number in (0, 1)")
    _check(cfg, "model.nonfinite_loss", lambda v: v in ("stop", "skip"), "stop or skip")


def validate_backbone(cfg: DictConfig) -> None:
    """`model.backbone.name` names a known model; `freeze_first_n` fits its tensor count (timm: counted on meta)."""
    name = _get(cfg, "model.backbone.name") or "mobilenet_v2"
    if not isinstance(name, str) or not (name == "mobilenet_v2" or name.startswith("timm:")):
        raise ConfigError(
            f"model.backbone.name={name!r}: expected mobilenet_v2 or timm:<model name> (e.g. timm:resnet18)"
        )
    n_tensors, what = BACKBONE_TENSORS, "parameter tensors of MobileNetV2.features"
    if name != "mobilenet_v2":
        import timm

        model_name = name.removeprefix("timm:")
        if not timm.is_model(model_name):
            pattern = model_name.split(".")[0][:6]
            raise ConfigError(
                f"model.backbone.name={name!r}: timm has no model {model_name!r}; list them with "
                f"python -c \"import timm; print(timm.list_models('{pattern}*'))\""
            )
        from deepfake_lightning.models.timm_backbone import count_timm_tensors

        try:
            n_tensors = count_timm_tensors(model_name)
        except ValueError as err:  # no features_only support
            raise ConfigError(str(err)) from None
        what = f"parameter tensors of the timm {model_name} feature extractor"
    _check(
        cfg,
        "model.backbone.freeze_first_n",
        lambda v: _is_int(v) and 0 <= v <= n_tensors,
        f"an integer in 0..{n_tensors} ({what})",
    )


def validate_run(cfg: DictConfig) -> None:
    _check(cfg, "trainer.max_epochs", lambda v: _is_int(v) and (v >= 1 or v == -1), "an integer >= 1 (or -1)")
    _check(cfg, "trainer.gradient_clip_val", lambda v: v >= 0, "a number >= 0 (0 disables clipping)")
    ckpt = _get(cfg, "ckpt_path")
    if ckpt is not None and ckpt != "last" and not Path(str(ckpt)).is_file():
        raise ConfigError(f"ckpt_path={ckpt!r}: file not found; expected a .ckpt file or 'last'")
    output_dir = _get(cfg, "paths.output_dir")
    if output_dir is not None:
        _check_writable(Path(output_dir))


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"paths.output_dir={str(path)!r}: cannot create it ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"paths.output_dir={str(path)!r}: not writable")


def validate_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` on the first invalid value."""
    validate_data(cfg)
    validate_model(cfg)
    validate_run(cfg)
