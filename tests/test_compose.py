"""Every experiment composes, and the verbatim README command resolves."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

EXPERIMENTS = [
    "advanced_v2",
    "fast",
    "faceswap_scratch",
    "ffhq_stylegan",
    "dfdc_faces",
    "lfw_faceswap",
    "lodo",
    "update",
]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(compose_cfg, experiment: str) -> None:
    overrides = [f"+experiment={experiment}"]
    if experiment == "faceswap_scratch":
        overrides.append("data.root=/tmp")
    if experiment == "lodo":
        overrides.append("data.held_out=dfdc_faces")
    cfg = compose_cfg("train", overrides, tiny=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["model"]["_target_"].endswith("DetectorModule")


def test_advanced_v2_is_the_published_recipe(compose_cfg) -> None:
    cfg = compose_cfg("train", ["+experiment=advanced_v2"], tiny=False)
    assert cfg.data._target_.endswith("DeepfakeDataModule") and cfg.data.layout == "faces140k"
    assert cfg.data.root.endswith("real_vs_fake/real-vs-fake")
    assert cfg.model.backbone.weights == "IMAGENET1K_V1" and cfg.model.backbone.freeze_first_n == 25
    assert cfg.model.loss.name == "focal"
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW" and cfg.model.optimizer.weight_decay > 0
    assert cfg.trainer.max_epochs == 20 and cfg.trainer.gradient_clip_val > 0
    assert cfg.trainer.precision == "auto-mixed"
    assert "early_stopping" in cfg.callbacks
    assert list(cfg.model.head.dropout) == [0.5, 0.35, 0.25]
    assert cfg.model.attention.hidden == 256 and list(cfg.model.head.hidden) == [512, 256]


@pytest.mark.parametrize(
    ("experiment", "data"),
    [
        ("ffhq_stylegan", {"group_by": None, "reencode_jpeg_quality": None}),
        ("dfdc_faces", {"group_by": "source_video", "reencode_jpeg_quality": None}),
        ("lfw_faceswap", {"group_by": None, "reencode_jpeg_quality": 85}),
    ],
)
def test_shared_set_experiments_are_advanced_v2_on_that_folder(
    compose_cfg, experiment: str, data: dict
) -> None:
    """Only the data differs from the published recipe: model, trainer and callbacks are advanced_v2's."""
    published = OmegaConf.to_container(
        compose_cfg("train", ["+experiment=advanced_v2"], tiny=False), resolve=False
    )
    cfg = compose_cfg("train", [f"+experiment={experiment}"], tiny=False)
    ours = OmegaConf.to_container(cfg, resolve=False)
    for key in ("model", "trainer", "callbacks", "seed"):
        assert ours[key] == published[key], key
    assert cfg.data.layout == "folder" and cfg.data.root.endswith(f"shared/data/{experiment}")
    assert {key: cfg.data[key] for key in data} == data
    assert cfg.data.image_size == 224


def test_public_override_keys_exist(compose_cfg) -> None:
    cfg = compose_cfg("train", tiny=False)
    for key in [
        "data.image_size",
        "data.batch_size",
        "data.num_workers",
        "model.backbone.weights",
        "model.backbone.freeze_first_n",
        "model.attention.enabled",
        "model.attention.hidden",
        "model.head.hidden",
        "model.head.dropout",
        "model.loss.name",
        "model.loss.alpha",
        "model.loss.gamma",
        "model.optimizer.lr",
        "model.optimizer.weight_decay",
    ]:
        assert OmegaConf.select(cfg, key, default="__missing__") != "__missing__", key
