"""Where prediction and its measuring tools live (issue 20 §2): checks that fail on the old layout.

Scoring files (images, video frames, the distributed writer, the service's batcher) lives in
`deepfake_lightning/prediction/`, and every path scores through one step, `prediction/scoring.py`: stack the
prepared images, one model call, cut the scores back per image. The load test is a measuring tool: its code
lives in `bench/`, and `inference/loadtest.py` only keeps the old `python -m` command running.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfake_lightning.inference import Detector
from deepfake_lightning.inference.video_source import Frame
from deepfake_lightning.prediction.files import predict_files
from deepfake_lightning.prediction.frames import predict_frames
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import face_like_image, save_image

pytest_plugins = ("tests.fixtures_inference",)

PACKAGE = REPO_ROOT / "deepfake_lightning"


def _definitions(path) -> list[str]:
    tree = ast.parse(path.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    return [getattr(node, "name", type(node).__name__) for node in ast.walk(tree) if isinstance(node, kinds)]


def test_load_test_code_lives_in_bench() -> None:
    assert (PACKAGE / "bench" / "loadtest.py").is_file() and (PACKAGE / "bench" / "raw_client.py").is_file()
    assert not (PACKAGE / "inference" / "raw_client.py").exists()
    old = PACKAGE / "inference" / "loadtest.py"
    assert not old.exists() or not _definitions(old), f"{old} must only forward to bench.loadtest"


def test_the_old_load_test_command_still_runs() -> None:
    """README once documented `python -m deepfake_lightning.inference.loadtest`: it reaches the same tool."""
    result = subprocess.run(
        [sys.executable, "-m", "deepfake_lightning.inference.loadtest"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Load test of the HTTP service" in result.stderr, result.stderr[-2000:]


SCORING = PACKAGE / "prediction"
MOVED = (
    "batch_predict",
    "video_predict",
    "distributed_predict",
    "batching",
    "decode_threads",
    "uint8_transfer",
)
SPLIT_STEP = {"stack_inputs", "region_counts", "per_image", "scored_images", "scored_fields", "label_of"}


def test_scoring_modules_live_in_the_prediction_package() -> None:
    left = [name for name in (*MOVED, "row_writer") if (PACKAGE / "inference" / f"{name}.py").exists()]
    assert not left, (
        f"scoring modules still in inference/: {left} (their home is deepfake_lightning/prediction/)"
    )
    for name in ("files", "frames", "distributed", "batcher", "scoring"):
        assert (SCORING / f"{name}.py").is_file(), name


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def test_no_scoring_loop_outside_the_prediction_package() -> None:
    """Stacking prepared images, scoring them and cutting the scores back per image happens in one place: no
    module outside prediction/ defines or calls that step, or scores a stack it has just built."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if SCORING in path.parents:
            continue
        tree = ast.parse(path.read_text())
        rel = path.relative_to(REPO_ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in SPLIT_STEP:
                found.append(f"{rel}:{node.lineno}: defines {node.name}")
        for call in _calls(tree):
            name = _name(call.func)
            if name in SPLIT_STEP - {"stack_inputs", "label_of"}:
                found.append(f"{rel}:{call.lineno}: calls {name}")
            if name == "score" and any(
                isinstance(a, ast.Call) and _name(a.func) == "stack_inputs" for a in call.args
            ):
                found.append(f"{rel}:{call.lineno}: scores a stack of its own")
    assert not found, (
        "a scoring loop outside prediction/ (use prediction.scoring.score_prepared):\n" + "\n".join(found)
    )


def test_files_frames_and_the_api_agree_on_each_image(tiny_ckpt: Path, tmp_path: Path) -> None:
    """The same image gives the same p_fake and label as a file row, a video frame row and `Detector.predict`."""
    detector = Detector.load(tiny_ckpt)
    images = [face_like_image(i, size=64 + 8 * i) for i in range(3)]
    paths = [save_image(tmp_path / f"img_{i}.png", image) for i, image in enumerate(images)]
    file_rows = list(predict_files(detector, paths, batch_size=2, num_workers=0))
    frame_rows: list[dict] = []
    frames = [Frame(i, i / 25, image) for i, image in enumerate(images)]
    summary = predict_frames(detector, frames, batch_size=2, on_row=frame_rows.append)
    api = detector.predict(images)
    assert [r["label"] for r in file_rows] == [r["label"] for r in frame_rows] == [p.label for p in api]
    p_api = [p.p_fake for p in api]
    assert [r["p_fake"] for r in file_rows] == pytest.approx(p_api, abs=1e-5)
    assert [r["p_fake"] for r in frame_rows] == pytest.approx(p_api, abs=1e-5)
    assert [r["error"] for r in file_rows + frame_rows] == [""] * 6
    assert summary.result(detector.threshold)["p_fake_mean"] == pytest.approx(float(np.mean(p_api)), abs=1e-5)


def _imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_evaluation_keeps_only_labelled_evaluation() -> None:
    """evaluation/logits.py holds the labelled logits of a module over a data module (eval, robustness,
    cross-dataset, calibration) and nothing else; no evaluation module scores files through the deployed side."""
    assert not (PACKAGE / "evaluation" / "predict.py").exists(), (
        "evaluation/predict.py is now evaluation/logits.py"
    )
    tree = ast.parse((PACKAGE / "evaluation" / "logits.py").read_text())
    defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert defined == ["predict_logits"], defined
    crossing = [
        f"{path.name} imports {module}"
        for path in sorted((PACKAGE / "evaluation").glob("*.py"))
        for module in _imported_modules(ast.parse(path.read_text()))
        if module.startswith(("deepfake_lightning.prediction", "deepfake_lightning.inference"))
    ]
    assert not crossing, crossing


def _receiver(call: ast.Call) -> str:
    """`detector` for `detector.score(...)` and `self.detector.score(...)`; '' for anything else."""
    func = call.func
    return _name(func.value) if isinstance(func, ast.Attribute) else ""


def test_only_the_scoring_step_calls_the_model() -> None:
    """Outside `bench/` (which times the model alone), no module calls `detector.score` but scoring.py: the files
    loop's pre-stacked uint8 batches go through `scoring.score_stacked`, as every other path does."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == SCORING / "scoring.py" or PACKAGE / "bench" in path.parents:
            continue
        for call in _calls(ast.parse(path.read_text())):
            if _name(call.func) == "score" and _receiver(call) == "detector":
                found.append(f"{path.relative_to(REPO_ROOT)}:{call.lineno}")
    assert not found, "a model call outside prediction/scoring.py:\n" + "\n".join(found)


ENTRY_ALLOWED = (  # what a thin prediction entry point may import from the package: its inputs, its job, utils
    "deepfake_lightning.inference.inputs",
    "deepfake_lightning.inference.video_source",
    "deepfake_lightning.prediction.file_job",
    "deepfake_lightning.prediction.video_job",
    "deepfake_lightning.utils.",
)


@pytest.mark.parametrize("entry", ["predict.py", "predict_video.py"])
def test_prediction_entry_points_are_thin(entry: str) -> None:
    """As lightning-hydra-template's: validate the config, call the run in prediction/, return its result. The
    detector (int8 cache included), the choice of one process or a distributed job and the output files are
    the package's."""
    tree = ast.parse((PACKAGE / entry).read_text())
    imported = sorted(m for m in _imported_modules(tree) if m.startswith("deepfake_lightning"))
    outside = [m for m in imported if not m.startswith(ENTRY_ALLOWED)]
    assert not outside, f"{entry} builds what prediction/ should: imports {outside}"
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(functions) <= 3, functions  # _validate, the task, main
