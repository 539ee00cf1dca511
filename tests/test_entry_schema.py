"""Every entry-point config through the schema (issue 20 part 3): predict, predict_video, export, prepare and
serve's model keys refuse unknown keys with the nearest name and check types and ranges before anything is
loaded; the threshold range is one definition, taken by every place that reads a threshold."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deepfake_lightning.bundle.calibration_file import read_calibration
from deepfake_lightning.bundle.errors import BundleError
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.thresholds import choose_threshold
from deepfake_lightning.export import export
from deepfake_lightning.modules import DetectorModule
from deepfake_lightning.predict import predict
from deepfake_lightning.predict_video import predict_video
from deepfake_lightning.prepare import prepare
from deepfake_lightning.serve import serve
from deepfake_lightning.utils.config_schema import THRESHOLD_WORDS, ConfigError
from deepfake_lightning.utils.entry_schema import ExportSettings, PredictSettings, PredictVideoSettings
from tests.fixtures_inference import compose_entry

ENTRIES: dict[str, Callable] = {
    "predict": predict,
    "predict_video": predict_video,
    "export": export,
    "serve": serve,
    "prepare": prepare,
}


def _stand_in_files(tmp_path: Path) -> dict[str, Path]:
    """Files the schema only needs to exist: nothing here is loaded, every case fails before that."""
    files = {"ckpt": tmp_path / "model.ckpt", "video": tmp_path / "clip.mp4", "images": tmp_path / "images"}
    files["ckpt"].write_bytes(b"")
    files["video"].write_bytes(b"")
    files["images"].mkdir(exist_ok=True)
    return files


def _base(entry: str, files: dict[str, Path]) -> list[str]:
    return {
        "predict": [f"ckpt_path={files['ckpt']}", f"input={files['images']}"],
        "predict_video": [f"ckpt_path={files['ckpt']}", f"input={files['video']}"],
        "export": [f"ckpt_path={files['ckpt']}"],
        "serve": [f"ckpt_path={files['ckpt']}"],
        "prepare": [f"input={files['images']}", f"output={files['images'].parent / 'out'}"],
    }[entry]


# (entry, override, the one line it must give); each was accepted silently or checked by hand before
REFUSED = [
    ("predict", "+treshold=0.5", "treshold=0.5: unknown key; did you mean threshold?"),
    ("predict", "+batchsize=8", "batchsize=8: unknown key; did you mean batch_size?"),
    ("predict", "progress=maybe", "progress='maybe': expected true or false"),
    ("predict", "batch_size=0", "batch_size=0: expected null or an integer >= 1"),
    ("predict", "device=1", "device=1: expected cpu, cuda, cuda:N or auto"),
    ("predict", "quantize=int4", "quantize='int4': expected null or int8"),
    ("predict", "max_calibration_images=0", "max_calibration_images=0: expected an integer >= 1"),
    ("predict_video", "+num_frame=8", "num_frame=8: unknown key; did you mean num_frames?"),
    ("predict_video", "batch_size=0", "batch_size=0: expected an integer >= 1"),
    ("predict_video", "max_seconds=0", "max_seconds=0: expected null or a number > 0"),
    ("predict_video", "live=maybe", "live='maybe': expected auto, true or false"),
    ("export", "+opsett=17", "opsett=17: unknown key; did you mean opset?"),
    ("export", "opset=abc", "opset='abc': expected an integer >= 7 (ONNX opset)"),
    ("export", "max_eval_images=0", "max_eval_images=0: expected an integer >= 1"),
    ("serve", "torch_replicas=-1", "torch_replicas=-1: expected an integer >= 0"),
    (
        "serve",
        "face_crop=maybe",
        "face_crop='maybe': expected null (as the model was trained), true or false",
    ),
    ("predict", "face_detector=mtcnn", "face_detector='mtcnn': expected null or centerface or haar"),
    ("predict_video", "face_scale=0.5", "face_scale=0.5: expected null or a number in [1, 4]"),
    ("serve", "face_max_faces=0", "face_max_faces=0: expected null or an integer >= 1"),
    ("prepare", "+framez=3", "framez=3: unknown key; did you mean frames?"),
]


@pytest.mark.parametrize(("entry", "override", "message"), REFUSED, ids=[f"{e}:{o}" for e, o, _ in REFUSED])
def test_entry_configs_are_checked_by_the_schema(
    tmp_path: Path, entry: str, override: str, message: str
) -> None:
    files = _stand_in_files(tmp_path)
    cfg = compose_entry(entry, [*_base(entry, files), override], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        ENTRIES[entry](cfg)
    assert str(info.value) == message


def test_whole_images_refuse_a_face_detector_beside_them(tmp_path: Path) -> None:
    files = _stand_in_files(tmp_path)
    cfg = compose_entry(
        "predict", [*_base("predict", files), "face_crop=false", "face_detector=haar"], tmp_path / "r"
    )
    with pytest.raises(ConfigError) as info:
        predict(cfg)
    assert str(info.value) == "face_crop=false with face_detector set: drop them or set face_crop=true"


def test_the_schema_names_the_missing_model_file(tmp_path: Path) -> None:
    files = _stand_in_files(tmp_path)
    gone = tmp_path / "gone.ckpt"
    cfg = compose_entry("predict", [f"ckpt_path={gone}", f"input={files['images']}"], tmp_path / "run")
    with pytest.raises(ConfigError, match=rf"^ckpt_path='{gone}': expected null or an existing \.ckpt"):
        predict(cfg)
    cfg = compose_entry("export", [f"ckpt_path={gone}"], tmp_path / "run")
    with pytest.raises(ConfigError, match=rf"^ckpt_path='{gone}': expected an existing \.ckpt written by"):
        export(cfg)


# --- the threshold range, declared once --------------------------------------------------------------------


def _refusals(value: float, tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Every place that takes a decision threshold, given `value`."""
    files = _stand_in_files(tmp_path)
    record = tmp_path / f"calibration_{value}.json"
    record.write_text(json.dumps({"temperature": 1.0, "threshold": value}))

    def entry(name: str, schema: type) -> Callable[[], object]:
        cfg = compose_entry(name, [*_base(name, files), f"threshold={value}"], tmp_path / "run")
        return lambda: schema.check(cfg)

    return {
        "model.threshold": lambda: DetectorModule(threshold=value),
        "predict": entry("predict", PredictSettings),
        "predict_video": entry("predict_video", PredictVideoSettings),
        "calibration.json": lambda: read_calibration(record),
        "compute_metrics": lambda: compute_metrics(np.array([0.2, 0.8]), np.array([0, 1]), threshold=value),
        "fixed threshold rule": lambda: choose_threshold(np.array([0.2, 0.8]), np.array([0, 1]), str(value)),
    }


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_threshold_ends_are_accepted_everywhere(tmp_path: Path, value: float) -> None:
    """0 and 1 are thresholds (a fit that flags nothing is 1): no place may refuse them ((0, 1) was one)."""
    for where, call in _refusals(value, tmp_path).items():
        try:
            call()
        except (ConfigError, BundleError) as err:
            pytest.fail(f"{where} refused threshold={value}: {err}")


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_threshold_out_of_range_gives_the_one_message_everywhere(tmp_path: Path, value: float) -> None:
    for where, call in _refusals(value, tmp_path).items():
        with pytest.raises((ConfigError, BundleError)) as info:
            call()
        message = str(info.value)
        assert f"threshold={value!r}: expected " in message and message.endswith(THRESHOLD_WORDS), where


def test_export_rules_across_keys(tmp_path: Path) -> None:
    files = _stand_in_files(tmp_path)
    for overrides, message in (
        (["format=torchscript", "quantize=int8"], "quantize=int8 needs format=onnx"),
        (["output=model.pt"], "output='model.pt': a onnx export should end in .onnx"),
    ):
        cfg = compose_entry("export", [*_base("export", files), *overrides], tmp_path / "run")
        with pytest.raises(ConfigError) as info:
            ExportSettings.check(cfg)
        assert str(info.value) == message
