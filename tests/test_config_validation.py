"""Invalid config values are refused at start-up with one line naming the key and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_lightning.utils.config_validation import ConfigError, validate_config

REPO = Path(__file__).resolve().parents[1]

INVALID = [
    ("data.image_size=16", r"data.image_size=16: expected an integer >= 32"),
    ("data.batch_size=0", r"data.batch_size=0: expected an integer >= 1"),
    ("data.num_workers=-1", r"data.num_workers=-1: expected an integer in 0..256"),
    ("data.on_bad_image=ignore", r"data.on_bad_image='ignore': expected skip or raise"),
    ("data.preprocess=stretch", r"data.preprocess='stretch': expected resize or center_crop"),
    ("data.augment_on=gpu", r"data.augment_on='gpu': expected cpu or device"),
    ("data.augment.colour.p=1.5", r"data.augment.colour.p=1.5: expected a probability in \[0, 1\]"),
    (
        "data.augment.jpeg.quality_range=[90,10]",
        r"quality_range=\[90, 10\]: expected \[low, high\] within 1..100",
    ),
    (
        "model.head.dropout=[0.5,1.0,0.2]",
        r"model.head.dropout=\[0.5, 1.0, 0.2\]: expected values in \[0, 1\)",
    ),
    ("model.head.dropout=[0.5,0.2]", r"model.head.dropout=\[0.5, 0.2\]: expected 3 values"),
    ("model.head.hidden=[512,-3]", r"model.head.hidden=\[512, -3\]: expected a list of positive integers"),
    ("model.backbone.freeze_first_n=200", r"freeze_first_n=200: expected an integer in 0..156"),
    ("model.attention.hidden=0", r"model.attention.hidden=0: expected an integer >= 1"),
    ("model.loss.name=hinge", r"model.loss.name='hinge': expected focal or bce"),
    ("model.loss.gamma=-1", r"model.loss.gamma=-1: expected a number >= 0"),
    ("model.optimizer.lr=0", r"model.optimizer.lr=0: expected a number in \(0, 10\)"),
    ("model.optimizer.weight_decay=-0.1", r"weight_decay=-0.1: expected a number >= 0"),
    ("trainer.max_epochs=0", r"trainer.max_epochs=0: expected an integer >= 1"),
    ("ckpt_path=/nope.ckpt", r"ckpt_path='/nope.ckpt': file not found"),
]


@pytest.mark.parametrize("override,message", INVALID)
def test_invalid_value_is_refused(compose_cfg, override: str, message: str) -> None:
    cfg = compose_cfg("train", [override], tiny=False)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_defaults_are_valid(compose_cfg) -> None:
    validate_config(compose_cfg("train", tiny=False))


def test_missing_data_root_names_the_layout(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["+experiment=advanced_v2", f"data.root={tmp_path}/absent"], tiny=False)
    with pytest.raises(ConfigError, match=r"real_vs_fake/real-vs-fake/\{train,valid,test\}/\{real,fake\}"):
        validate_config(cfg)


def test_unwritable_output_dir_fails_at_start(compose_cfg, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = compose_cfg("train", tiny=False)
    cfg.paths.output_dir = str(blocker / "run")
    with pytest.raises(ConfigError, match="paths.output_dir=.*cannot create it"):
        validate_config(cfg)


def test_cli_prints_one_line_and_exits_nonzero(tmp_path: Path) -> None:
    """The verbatim command on a machine without the dataset stops at once with the layout in one line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfake_lightning.train",
            "+experiment=advanced_v2",
            f"paths.log_dir={tmp_path}",
            f"paths.data_dir={tmp_path}/data",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("Invalid config: data.root=")
        and "real_vs_fake/real-vs-fake/{train,valid,test}" in last
    )
    assert "Traceback" not in result.stderr
