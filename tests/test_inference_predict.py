"""`deepfake_lightning.predict`: one row per file, errors in rows, CSV/JSON, workers, ONNX and ensembles."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deepfake_lightning.inference import Detector
from deepfake_lightning.predict import predict
from deepfake_lightning.prediction.row_writer import RowWriter
from deepfake_lightning.utils.config_validation import ConfigError
from tests.fixtures_inference import compose_entry, face_like_image, save_image

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt, tiny_onnx, ... shared fixtures


def _run(tmp_path: Path, overrides: list[str]) -> dict:
    cfg = compose_entry("predict", ["num_workers=0", "progress=false", *overrides], tmp_path / "run")
    return predict(cfg)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_one_row_per_file_and_errors_never_abort(
    tiny_ckpt: Path, image_folder: Path, tmp_path: Path
) -> None:
    save_image(image_folder / "small.png", face_like_image(20, size=16))
    result = _run(tmp_path, [f"ckpt_path={tiny_ckpt}", f"input={image_folder}", "batch_size=2"])
    rows = _rows(Path(result["output"]))
    assert list(rows[0]) == ["path", "p_fake", "label", "error"]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert sorted(by_name) == ["broken.jpg", "img_0.png", "img_1.png", "img_2.png", "small.png"]
    assert by_name["broken.jpg"]["p_fake"] == "" and "broken.jpg" in by_name["broken.jpg"]["error"]
    assert "min_size=64" in by_name["small.png"]["error"] and by_name["small.png"]["label"] == ""
    detector = Detector.load(tiny_ckpt)
    for i in range(3):
        row = by_name[f"img_{i}.png"]
        assert row["error"] == "" and row["label"] in ("fake", "real")
        assert float(row["p_fake"]) == pytest.approx(
            detector.predict(image_folder / f"img_{i}.png")[0].p_fake
        )
    assert (result["error"], result["fake"] + result["real"], result["n"]) == (2, 3, 5)
    assert result["images_per_s"] > 0


def test_json_output_glob_input_and_workers(tiny_ckpt: Path, image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    _run(
        tmp_path,
        [f"ckpt_path={tiny_ckpt}", f"input={image_folder}/img_*.png", f"output={out}", "num_workers=1"],
    )
    records = json.loads(out.read_text())
    assert [Path(r["path"]).name for r in records] == ["img_0.png", "img_1.png", "img_2.png"]
    assert all(r["error"] == "" and 0 <= r["p_fake"] <= 1 for r in records)
    single = _run(tmp_path, [f"ckpt_path={tiny_ckpt}", f"input={image_folder / 'img_1.png'}"])
    assert float(_rows(Path(single["output"]))[0]["p_fake"]) == pytest.approx(records[1]["p_fake"])


def test_exported_onnx_model_matches_torch(
    tiny_ckpt: Path, tiny_onnx: Path, image_folder: Path, tmp_path: Path
) -> None:
    """`backend=onnx` on a .ckpt is covered in test_inference_export; here the exported file runs the CLI."""
    outputs = {}
    for name, model in {"torch": tiny_ckpt, "onnx": tiny_onnx}.items():
        result = _run(
            tmp_path, [f"ckpt_path={model}", f"input={image_folder}", f"output={tmp_path / name}.csv"]
        )
        outputs[name] = {r["path"]: r["p_fake"] for r in _rows(Path(result["output"]))}
    assert outputs["onnx"].keys() == outputs["torch"].keys()
    for path, p_fake in outputs["torch"].items():
        assert (outputs["onnx"][path] == "") == (p_fake == "")
        if p_fake:
            assert float(outputs["onnx"][path]) == pytest.approx(float(p_fake), abs=1e-4)


def test_face_crop_adds_a_face_column(tiny_ckpt: Path, image_folder: Path, tmp_path: Path) -> None:
    result = _run(tmp_path, [f"ckpt_path={tiny_ckpt}", f"input={image_folder}", "face_crop=true"])
    rows = _rows(Path(result["output"]))
    assert "face" in rows[0]
    assert {r["face"] for r in rows if not r["error"]} == {"not_found"}  # random pixels: full image used


def test_ensemble_from_config(tiny_ckpt: Path, calibrated_ckpt, image_folder: Path, tmp_path: Path) -> None:
    other = calibrated_ckpt({"temperature": 3.0, "threshold": 0.5, "threshold_rule": "0.5"})
    result = _run(tmp_path, [f"ensemble=[{tiny_ckpt},{other}]", f"input={image_folder}"])
    rows = {Path(r["path"]).name: r for r in _rows(Path(result["output"]))}
    a, b = Detector.load(tiny_ckpt), Detector.load(other)
    path = image_folder / "img_0.png"
    expected = (a.predict(path)[0].p_fake + b.predict(path)[0].p_fake) / 2
    assert float(rows["img_0.png"]["p_fake"]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["input=/no/such/dir"], "no such file"),
        (["output=preds.txt"], r"\.csv or \.json"),
        (["backend=tensorrt"], "backend"),
        (["min_size=-1"], "min_size"),
        (["onnx_sessions=-2"], r"onnx_sessions=-2: expected null or an integer >= 0"),
        (["threshold=1.5"], "threshold"),
        (["ckpt_path=null"], "ckpt_path=null"),
    ],
)
def test_config_errors(
    tiny_ckpt: Path, image_folder: Path, tmp_path: Path, overrides: list[str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        _run(tmp_path, [f"ckpt_path={tiny_ckpt}", f"input={image_folder}", *overrides])


def test_ckpt_and_ensemble_together_is_an_error(tiny_ckpt: Path, image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        _run(
            tmp_path,
            [f"ckpt_path={tiny_ckpt}", f"ensemble=[{tiny_ckpt},{tiny_ckpt}]", f"input={image_folder}"],
        )
    with pytest.raises(ConfigError, match="no image files"):
        (tmp_path / "empty").mkdir()
        _run(tmp_path, [f"ckpt_path={tiny_ckpt}", f"input={tmp_path / 'empty'}"])


def test_row_writer_json_is_valid_when_empty_and_csv_blanks_none(tmp_path: Path) -> None:
    with RowWriter(tmp_path / "empty.json", ["a"]):
        pass
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    with RowWriter(tmp_path / "x.csv", ["a", "b"]) as out:
        out.write({"a": None, "b": 1, "extra": 2})
    assert (tmp_path / "x.csv").read_text().splitlines() == ["a,b", ",1"]
