"""One decode-and-check step and one error contract for every prediction path (issue 20 §2).

The same bad file (truncated JPEG, zero bytes, too many pixels, not an image, too small) gets the same reason
code and the same one-line message through `predict` (its rows and its CSV), a video frame where the check
applies (too small), and the service over a real uvicorn process (`/v1/predict`: the reason's status and
`{"detail", "reason"}`; `/v1/predict/batch`: an entry with `error` and `reason`). The service's answer for a
good image carries the CSV row's fields with the same values. Only `prediction/image_check.py` decodes image
bytes for prediction.
"""

from __future__ import annotations

import ast
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from deepfake_lightning.bench.loadtest import png_claiming
from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.server_process import ServerProcess
from deepfake_lightning.inference.video_source import Frame
from deepfake_lightning.predict import predict
from deepfake_lightning.prediction.files import predict_files
from deepfake_lightning.prediction.frames import predict_frames
from deepfake_lightning.prediction.image_check import REFUSAL_STATUS
from tests.bad_inputs import good_jpeg
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import compose_entry, face_like_image

pytest_plugins = ("tests.fixtures_inference",)

PACKAGE = REPO_ROOT / "deepfake_lightning"
MAX_PIXELS = 1_000_000


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


BAD = {  # file name -> (bytes, reason)
    "truncated.jpg": (good_jpeg(7, 96)[:400], "damaged"),
    "zero.jpg": (b"", "empty"),
    "huge.png": (png_claiming(2000, 1000), "too_many_pixels"),  # 2e6 pixels, over max_pixels=1e6
    "notes.jpg": (b"just some text, not an image\n" * 10, "not_an_image"),
    "tiny.png": (_png(face_like_image(3, size=20)), "too_small"),
}
GOOD = "good.png"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusals") / "images"
    root.mkdir()
    for name, (data, _) in BAD.items():
        (root / name).write_bytes(data)
    (root / GOOD).write_bytes(_png(face_like_image(5, size=80)))
    return root


@pytest.fixture(scope="module")
def cli_rows(tiny_ckpt: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The predict CLI's CSV, one row per file name."""
    out = tmp_path_factory.mktemp("predict") / "preds.csv"
    overrides = [f"ckpt_path={tiny_ckpt}", f"input={folder}", f"output={out}", "progress=false"]
    predict(compose_entry("predict", [*overrides, f"max_pixels={MAX_PIXELS}", "num_workers=0"], out.parent))
    with out.open(newline="") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def server(tiny_ckpt: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tiny_ckpt, [f"max_pixels={MAX_PIXELS}"]) as running:
        yield running


def _named(message: str, folder: Path) -> str:
    """A CSV row's message with the file's path cut to its name (an upload is named by its file name)."""
    return message.replace(f"{folder}/", "")


def test_files_rows_carry_the_reason_and_the_one_message(tiny_ckpt: Path, folder: Path, cli_rows) -> None:
    detector = Detector.load(tiny_ckpt, max_pixels=MAX_PIXELS)
    rows = {Path(r["path"]).name: r for r in predict_files(detector, sorted(folder.iterdir()), num_workers=0)}
    for name, (_, reason) in BAD.items():
        row = rows[name]
        assert (row["reason"], row["p_fake"], row["label"]) == (reason, None, None), (name, row)
        assert row["error"].startswith(f"{folder / name}: ") and "\n" not in row["error"], row["error"]
        assert cli_rows[name]["error"] == row["error"] and cli_rows[name]["p_fake"] == "", name
    assert rows[GOOD]["error"] == "" and cli_rows[GOOD]["error"] == ""


def test_the_service_answers_each_refusal_with_the_rows_reason_and_message(
    server: ServerProcess, folder: Path, cli_rows
) -> None:
    for name, (data, reason) in BAD.items():
        response = httpx.post(f"{server.url}/v1/predict", files={"file": (name, data)}, timeout=60)
        assert response.status_code == REFUSAL_STATUS[reason], (name, response.text)
        assert response.json() == {"detail": _named(cli_rows[name]["error"], folder), "reason": reason}
    assert REFUSAL_STATUS["too_many_pixels"] == 413 and REFUSAL_STATUS["damaged"] == 422


def test_batch_entries_match_the_rows_and_a_zero_byte_part_is_one_entry(
    server: ServerProcess, folder: Path, cli_rows
) -> None:
    """An empty part used to refuse the whole batch with 422; it is one refused file like any other now."""
    names = [*BAD, GOOD]
    files = [("files", (name, (folder / name).read_bytes())) for name in names]
    response = httpx.post(f"{server.url}/v1/predict/batch", files=files, timeout=60)
    assert response.status_code == 200, response.text
    entries = {entry["filename"]: entry for entry in response.json()["predictions"]}
    assert list(entries) == names
    for name, (_, reason) in BAD.items():
        error = _named(cli_rows[name]["error"], folder)
        assert entries[name] == {"filename": name, "error": error, "reason": reason}, entries[name]


def test_the_service_answer_is_the_rows_fields(server: ServerProcess, folder: Path, cli_rows) -> None:
    """The answer for a good image holds the CSV row's fields (bar the path) with the same values."""
    data = (folder / GOOD).read_bytes()
    answer = httpx.post(f"{server.url}/v1/predict", files={"file": (GOOD, data)}, timeout=60).json()
    row = cli_rows[GOOD]
    assert answer["label"] == row["label"] and answer["p_fake"] == pytest.approx(
        float(row["p_fake"]), abs=1e-6
    )
    assert "error" not in answer and answer["filename"] == GOOD  # empty in the CSV, left out of the JSON


def test_a_too_small_frame_reads_as_a_too_small_file(tiny_ckpt: Path, folder: Path, cli_rows) -> None:
    detector = Detector.load(tiny_ckpt)
    rows: list[dict] = []
    predict_frames(detector, [Frame(0, 0.0, face_like_image(3, size=20))], on_row=rows.append)
    [row] = rows
    assert row["reason"] == "too_small" and row["p_fake"] is None
    assert row["error"] == _named(cli_rows["tiny.png"]["error"], folder).replace("tiny.png", "frame 0")


# --- one decoder --------------------------------------------------------------------------------------------

PATHS = (PACKAGE / "prediction", PACKAGE / "inference")
ENTRY_POINTS = ("predict.py", "predict_video.py", "serve.py")
DECODERS = {"load_rgb", "decode_rgb", "open_bounded", "decode_opened", "imdecode", "decode_jpeg"}


def _decoding_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if name in DECODERS or (owner == "Image" and name == "open"):
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {name}")
    return found


def prediction_modules() -> list[Path]:
    modules = [p for base in PATHS for p in sorted(base.rglob("*.py"))]
    return modules + [PACKAGE / name for name in ENTRY_POINTS]


def test_only_the_decode_step_decodes_image_bytes_for_prediction() -> None:
    """Image files, `Detector.predict`, the service and the int8 calibration images all decode through
    `prediction/image_check.py`; nothing else in prediction/, inference/ or the entry points calls a decoder."""
    step = PACKAGE / "prediction" / "image_check.py"
    assert _decoding_calls(step), "image_check.py no longer decodes: the test would pass vacuously"
    found = [call for path in prediction_modules() if path != step for call in _decoding_calls(path)]
    assert not found, "image bytes decoded outside prediction/image_check.py:\n" + "\n".join(found)


def test_the_service_builds_no_answer_fields_of_its_own() -> None:
    """Its answers come from the rows' builders (`answer_fields` on `scored_fields`, `refusal_fields`): the
    service neither labels a score nor writes an error message itself."""
    tree = ast.parse((PACKAGE / "inference" / "service.py").read_text())
    calls = {
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert "label_of" not in calls and {"answer_fields", "refusal_fields"} <= calls, sorted(calls)
