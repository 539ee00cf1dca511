"""The config schema (utils/config_schema.py): each check is declared once, refuses wrong types and unknown keys at
start-up, and gives the same one line whether the value comes from the command line or from Python."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from deepfake_lightning.data import DeepfakeDataModule, SyntheticDataModule
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.index import stratified_split
from deepfake_lightning.data.transforms import AUGMENTATION_GROUPS, build_train_transform
from deepfake_lightning.models.attention import SpatialAttention
from deepfake_lightning.models.backbone import MobileNetV2Backbone
from deepfake_lightning.models.head import MLPHead
from deepfake_lightning.modules import DetectorModule
from deepfake_lightning.modules.losses import BinaryLoss
from deepfake_lightning.utils.config_schema import (
    AttentionSettings,
    Augment,
    BackboneSettings,
    DataSettings,
    HeadSettings,
    LossSettings,
    ModelSettings,
    SyntheticDataSettings,
)
from deepfake_lightning.utils.config_validation import (
    ConfigError,
    check_schema,
    validate_backbone,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# values no start-up check looked at before the schema: unknown keys, and types of keys that had no check
CAUGHT_BY_THE_SCHEMA = [
    ("+data.batchsize=64", r"^data.batchsize=64: unknown key; did you mean batch_size\?$"),
    ("+model.head.widths=[1]", r"^model.head.widths=\[1\]: unknown key; expected one of hidden, dropout$"),
    ("+trainer.fast_dev_runn=1", r"^trainer.fast_dev_runn=1: unknown key; did you mean fast_dev_run\?$"),
    (
        "+data.augment.colour.prob=0.5",
        r"^data.augment.colour.prob=0.5: unknown key; expected one of enabled, p,",
    ),
    ("data.pin_memory=maybe", r"^data.pin_memory='maybe': expected true or false$"),
    ("model.attention.enabled=2", r"^model.attention.enabled=2: expected true or false$"),
    ("data.augment.colour.brightness=-1", r"^data.augment.colour.brightness=-1: expected a number >= 0$"),
    (
        "data.normalize.std=[0.2,0,0.2]",
        r"^data.normalize.std=\[0.2, 0, 0.2\]: expected 3 numbers > 0 \(R, G, B\)$",
    ),
    ("data.n_train=0", r"^data.n_train=0: expected an integer >= 1 \(images per class\)$"),
    (
        "+data.root=/somewhere",
        r"^data.root='/somewhere': expected null \(the synthetic set lives under data.out_dir\)",
    ),
    (
        "data._target_=deepfake_lightning.data.NoSuchDataModule",
        r"^data._target_='deepfake_lightning.data.NoSuchDataModule': cannot import it \(.*NoSuchDataModule",
    ),
]


@pytest.mark.parametrize("override,message", CAUGHT_BY_THE_SCHEMA)
def test_wrong_types_and_unknown_keys_are_refused_at_start(compose_cfg, override: str, message: str) -> None:
    cfg = compose_cfg("train", [override], tiny=False)
    with pytest.raises(ConfigError, match=message) as info:
        validate_config(cfg)
    assert "\n" not in str(info.value)


def test_the_cli_refuses_an_unknown_key_in_one_line(tmp_path: Path) -> None:
    """Before anything is built (no data generated, no model): `Invalid config: ...` and no traceback."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfake_lightning.train",
            "+data.batchsize=64",
            f"paths.log_dir={tmp_path}",
            f"paths.data_dir={tmp_path}/data",
            "extras.print_config=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "Invalid config: data.batchsize=64: unknown key; did you mean batch_size?"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()


def _root(tmp_path: Path) -> str:
    (tmp_path / "d").mkdir(exist_ok=True)
    return str(tmp_path / "d")


# (override on the command line, the same value given in Python to the class or function that uses it)
SAME_MESSAGE: list[tuple[str, Callable[[str], object]]] = [
    (
        "data.on_bad_image=ignore",
        lambda root: DeepfakeDataModule(root, layout="folder", on_bad_image="ignore"),
    ),
    ("data.layout=flat", lambda root: DeepfakeDataModule(root, layout="flat")),
    ("data.augment_on=gpu", lambda root: DeepfakeDataModule(root, layout="folder", augment_on="gpu")),
    ("data.batch_size=0", lambda root: DeepfakeDataModule(root, layout="folder", batch_size=0)),
    ("data.image_size=16", lambda root: DeepfakeDataModule(root, layout="folder", image_size=16)),
    ("data.group_by=''", lambda root: DeepfakeDataModule(root, layout="folder", group_by="")),
    ("data.split_ratios=[0.5,0.5]", lambda root: stratified_split([], [0.5, 0.5], seed=0)),
    ("data.decoder=turbo", lambda root: load_rgb(Path(root) / "x.jpg", decoder="turbo")),
    (
        "data.augment.colour.p=1.5",
        lambda root: build_train_transform(32, "resize", {"colour": {"enabled": True, "p": 1.5}}, None),
    ),
    ("model.loss.name=hinge", lambda root: BinaryLoss("hinge")),
    ("model.loss.gamma=-1", lambda root: BinaryLoss(gamma=-1)),
    ("model.attention.kind=gate", lambda root: SpatialAttention(8, kind="gate")),
    ("model.attention.hidden=0", lambda root: SpatialAttention(8, hidden=0)),
    ("model.head.dropout=[0.5,0.2]", lambda root: MLPHead(1280, [512, 256], [0.5, 0.2])),
    ("model.head.hidden=[512,-3]", lambda root: MLPHead(1280, [512, -3], [0.5, 0.35, 0.25])),
    ("model.nonfinite_loss=ignore", lambda root: DetectorModule(nonfinite_loss="ignore")),
    ("model.threshold=1.5", lambda root: DetectorModule(threshold=1.5)),
    ("model.optimizer.lr=0", lambda root: DetectorModule(optimizer={"lr": 0})),
    ("model.backbone.freeze_first_n=200", lambda root: MobileNetV2Backbone(freeze_first_n=200)),
]


@pytest.mark.parametrize("override,direct", SAME_MESSAGE, ids=[o for o, _ in SAME_MESSAGE])
def test_python_and_the_cli_give_the_same_message(
    compose_cfg, tmp_path: Path, override: str, direct: Callable[[str], object]
) -> None:
    """The check lives in one place: the schema, called at start-up and by the class that takes the value."""
    root = _root(tmp_path)
    cfg = compose_cfg("train", ["data=folder", f"data.root={root}", override], tiny=False)
    with pytest.raises(ConfigError) as cli:
        validate_config(cfg)
    with pytest.raises(ConfigError) as python:
        direct(root)
    assert str(python.value) == str(cli.value)
    assert str(cli.value).startswith(override.split("=")[0] + "=") and "expected" in str(cli.value)


def test_folder_only_keys_give_the_same_message(compose_cfg, tmp_path: Path) -> None:
    root = _root(tmp_path)
    cfg = compose_cfg("train", ["data=faces140k", f"data.root={root}", "+data.max_per_class=10"], tiny=False)
    with pytest.raises(ConfigError) as cli:
        validate_config(cfg)
    with pytest.raises(ConfigError) as python:
        DeepfakeDataModule(root, max_per_class=10)
    assert (
        str(python.value)
        == str(cli.value)
        == (
            "data.max_per_class=10: applies to data=folder only; faces140k data has given train/valid/test splits"
        )
    )


# --- every shipped config satisfies the schema --------------------------------------------------------------


def _names(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


MANDATORY = {"lodo": ["data.held_out=dfdc_faces"]}  # ??? in the experiment: the command line must say


@pytest.mark.parametrize(
    "overrides",
    [[f"+experiment={name}", *MANDATORY.get(name, [])] for name in _names("experiment")]
    + [["+experiment=fast", f"+ablation={name}"] for name in _names("ablation")]
    + [[f"debug={name}"] for name in _names("debug")]
    + [["trainer=ddp_cpu"], ["trainer=gpu"], ["trainer=ddp"], ["model/scheduler=plateau"]],
    ids=lambda overrides: " ".join(overrides),
)
def test_shipped_configs_satisfy_the_schema(compose_cfg, overrides: list[str]) -> None:
    cfg = compose_cfg("train", overrides, tiny=False)
    check_schema(cfg)
    validate_backbone(cfg)


def _search_space() -> list[str]:
    """Each value of the Optuna search space: every choice, both ends of every interval."""
    sweeper = OmegaConf.load(CONF / "hparams_search" / "advanced_v2_optuna.yaml").hydra.sweeper
    parser = OverridesParser.create()
    values = []
    for key, space in sweeper.params.items():
        sweep = parser.parse_overrides([f"{key}={space}"])[0].value()
        points = sweep.list if hasattr(sweep, "list") else [sweep.start, sweep.end]
        values += [f"{key}={point}".replace(" ", "") for point in points]
    return values


@pytest.mark.parametrize("override", _search_space())
def test_every_point_of_the_optuna_search_space_is_valid(compose_cfg, override: str) -> None:
    cfg = compose_cfg("train", ["+experiment=advanced_v2", override], tiny=False)
    check_schema(cfg)
    validate_backbone(cfg)


# --- the schema mirrors the classes it describes -------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,schema,not_in_schema",
    [
        (DeepfakeDataModule, DataSettings, set()),
        (SpatialAttention, AttentionSettings, {"channels"}),
        (MLPHead, HeadSettings, {"in_features"}),
        (BinaryLoss, LossSettings, set()),
        (DetectorModule, ModelSettings, set()),
        (MobileNetV2Backbone, BackboneSettings, set()),
    ],
)
def test_schema_fields_and_defaults_are_the_constructors(cls: type, schema: type, not_in_schema: set) -> None:
    parameters = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and name not in not_in_schema
    }
    assert set(parameters) <= set(schema.model_fields)
    # build_backbone: the family picks the class, then models/tuning.apply_tuning applies tune/tune_last_k
    assert set(schema.model_fields) - set(parameters) <= {"name", "tune", "tune_last_k"}
    for name, default in parameters.items():
        if default is not inspect.Parameter.empty:
            assert schema.model_fields[name].default == default, name


def test_tuning_defaults_are_the_schema_defaults() -> None:
    from deepfake_lightning.models.tuning import apply_tuning

    parameters = inspect.signature(apply_tuning).parameters
    for name in ("tune", "tune_last_k"):
        assert BackboneSettings.model_fields[name].default == parameters[name].default, name


def test_synthetic_schema_adds_the_generator_arguments() -> None:
    parameters = inspect.signature(SyntheticDataModule.__init__).parameters
    added = set(SyntheticDataSettings.model_fields) - set(DataSettings.model_fields)
    assert added == set(parameters) - {"self", "kwargs"}
    for name in added:
        assert (
            SyntheticDataSettings.model_fields[name].default == parameters[name].default or name == "out_dir"
        )


def test_augment_schema_lists_the_transform_groups() -> None:
    assert set(Augment.model_fields) == set(AUGMENTATION_GROUPS) | {"random_crop"}
