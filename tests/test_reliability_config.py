"""Start-up refusals of invalid config values, beyond tests/test_config_validation.py, and their count."""

from __future__ import annotations

import pytest

from deepfake_lightning.utils.config_validation import ConfigError, validate_config
from tests.test_config_validation import INVALID as BASE_INVALID

MORE_INVALID = [
    (
        "data.split_ratios=[0.8,0.3,0.1]",
        r"data.split_ratios=\[0.8, 0.3, 0.1\]: expected 3 non-negative numbers summing to 1",
    ),
    (
        "data.split_ratios=[0.5,0.5]",
        r"data.split_ratios=\[0.5, 0.5\]: expected 3 non-negative numbers summing to 1",
    ),
    ("model.threshold=1.5", r"model.threshold=1.5: expected a number in \[0, 1\]"),
    ("model.threshold=-0.1", r"model.threshold=-0.1: expected a number in \[0, 1\]"),
    ("model.nonfinite_loss=ignore", r"model.nonfinite_loss='ignore': expected stop or skip"),
    ("data.check_leakage=sometimes", r"data.check_leakage='sometimes': expected true or false"),
    ("data.verify=1", r"data.verify=1: expected true or false"),
    ("data.decoder=turbo", r"data.decoder='turbo': expected auto, pil or simplejpeg"),
    ("data.reencode_jpeg_quality=0", r"data.reencode_jpeg_quality=0: expected null or an integer in 1..100"),
    (
        "data.augment.geometric.hflip_p=-0.1",
        r"data.augment.geometric.hflip_p=-0.1: expected a probability in \[0, 1\]",
    ),
    ("trainer.gradient_clip_val=-1", r"trainer.gradient_clip_val=-1: expected a number >= 0"),
    ("model.loss.alpha=2", r"model.loss.alpha=2: expected a value in \[0, 1\], or -1 for no weighting"),
]


@pytest.mark.parametrize("override,message", MORE_INVALID)
def test_more_invalid_values_are_refused_in_one_line(compose_cfg, override: str, message: str) -> None:
    cfg = compose_cfg("train", ["data=folder", "data.root=/tmp", override], tiny=False)
    with pytest.raises(ConfigError, match=f"^{message}") as info:
        validate_config(cfg)
    assert "\n" not in str(info.value)


def test_count_of_refused_keys() -> None:
    """Every invalid value of both tables is refused (the tests above); here, how many keys they cover."""
    overrides = [override for override, _ in BASE_INVALID + MORE_INVALID]
    keys = {override.split("=")[0] for override in overrides}
    assert len(overrides) == 31 and len(keys) == 28
