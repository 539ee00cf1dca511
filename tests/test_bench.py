"""The bench command end to end at smoke size, and the report's ratio, schema and target logic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_lightning.bench.images import folder_image_set
from deepfake_lightning.bench.report import compute_ratios, targets, validate_rows
from deepfake_lightning.bench.rows import ROW_FIELDS, Row
from deepfake_lightning.data.index import index_folder
from deepfake_lightning.models import build_detector
from deepfake_lightning.models.tuning import layer_norms
from tests.conftest import make_folder_tree, write_image

REPO_ROOT = Path(__file__).resolve().parents[1]


def _row(task: str = "inference", backend: str = "eager", throughput: float = 10.0, **fields: object) -> Row:
    values = {
        "stage": "batch",
        "device": "cpu",
        "precision": "fp32",
        "batch_size": 8,
        "image_size": 224,
        "workers": 0,
        "threads": 1,
        "latency_ms_p50": 1.0,
        "latency_ms_p99": 2.0,
    } | fields
    return Row(task=task, backend=backend, throughput_img_s=throughput, **values)  # type: ignore[arg-type]


def _run_bench(out: Path, *overrides: str) -> None:
    """`python -m deepfake_lightning.bench smoke=true threads=1 ...` writing into `out`, as a user runs it."""
    command = [
        sys.executable,
        "-m",
        "deepfake_lightning.bench",
        "smoke=true",
        "threads=1",
        *overrides,
        f"output_dir={out}",
        f"cache_dir={out / 'cache'}",
        f"paths.log_dir={out / 'logs'}",
        f"hydra.run.dir={out / 'hydra'}",
    ]
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    _run_bench(out)
    return out


def test_smoke_bench_writes_valid_rows_with_baselines_and_ratios(smoke_report: Path) -> None:
    document = json.loads((smoke_report / "bench.json").read_text())
    assert {"rows", "versions", "date", "host"} <= set(document)
    rows = document["rows"]
    assert validate_rows(rows) == []
    assert "problems" not in document
    assert {r["task"] for r in rows} == {"data", "index", "train", "inference", "predict", "faces"}
    for task in ("data", "index", "train", "inference", "predict", "faces"):
        baselines = [r for r in rows if r["task"] == task and "baseline" in r["backend"]]
        assert baselines and all(r["ratio_to_baseline"] == 1.0 for r in baselines), task
    assert all(r["ratio_to_baseline"] is not None for r in rows if "error" not in r["extra"])
    assert all(set(ROW_FIELDS) <= set(r) for r in rows)
    stages = {r["stage"] for r in rows if r["task"] == "data"}
    assert {"decode", "train_aug", "train_uint8", "device_augment"} <= stages  # augment_on=device split
    eager = [r for r in rows if r["task"] == "inference" and r["backend"] == "eager"]
    assert sorted(r["batch_size"] for r in eager) == [1, 2, 4]  # single image, batch_sizes, batch_size
    int8 = [r for r in rows if r["task"] == "inference" and r["precision"] == "int8"]
    assert int8 and all("auroc_delta" in r["extra"] for r in int8)
    assert document["versions"]["torch"]
    assert document["notes"]["onnx_int8_mb"] < document["notes"]["onnx_fp32_mb"]


def test_bench_recipes_rows_compare_each_encoder_recipe_with_full_fine_tuning(tmp_path: Path) -> None:
    """`tasks=[recipes]` on a 6-block test ViT: a step per recipe and the cache's one-off forwards, with ratios."""
    _run_bench(tmp_path, "tasks=[recipes]", "model.backbone.name=timm:test_vit")
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert validate_rows(rows) == []
    steps = {r["backend"]: r for r in rows if r["stage"] == "train_step"}
    assert list(steps) == ["baseline:tune=all", "tune=ln", "tune=last_k k=2, cached", "tune=frozen, cached"]
    head = 64 + 1
    vit = build_detector({"name": "timm:test_vit"}, {"enabled": False}, {"hidden": [], "dropout": [0.0]})
    norms = sum(p.numel() for m in layer_norms(vit.backbone.features) for p in m.parameters())
    assert (
        steps["tune=ln"]["extra"]["trainable_parameters"] == head + norms
    )  # which norms: tests/test_tuning.py
    assert steps["tune=frozen, cached"]["extra"]["trainable_parameters"] == head
    builds = [r["backend"] for r in rows if r["stage"] == "cache_build"]
    assert builds == [
        "baseline:full forward",
        "to the cut of tune=last_k k=2 (block)",
        "to the cut of tune=frozen (pooled)",
    ]
    assert all(r["ratio_to_baseline"] > 0 for r in rows)


def test_smoke_bench_times_each_face_detector_with_and_without_alignment(smoke_report: Path) -> None:
    rows = [r for r in json.loads((smoke_report / "bench.json").read_text())["rows"] if r["task"] == "faces"]
    found = {(r["backend"], r["stage"]) for r in rows}
    backends = ("haar_baseline", "centerface_onnxruntime", "centerface_opencv")
    assert found == {(b, s) for b in backends for s in ("detect", "detect+align")}
    for row in rows:
        assert row["image_size"] == 128 and row["batch_size"] == 1 and row["throughput_img_s"] > 0
        assert row["extra"]["images"] == 2 and 0 <= row["extra"]["images_with_a_face"] <= 2


def test_smoke_bench_writes_markdown_and_profiles(smoke_report: Path) -> None:
    text = (smoke_report / "bench.md").read_text()
    rows = json.loads((smoke_report / "bench.json").read_text())["rows"]
    table = [
        line
        for line in text.splitlines()
        if line.startswith(("| data ", "| index ", "| train ", "| inference ", "| predict ", "| faces "))
    ]
    assert len(table) == len(rows)
    assert "## Targets" in text and "smoke=true" in text
    assert (smoke_report / "profile_inference.txt").read_text().strip()
    assert (smoke_report / "profile_train.txt").read_text().strip()


def test_smoke_bench_puts_predict_end_to_end_beside_model_only(smoke_report: Path) -> None:
    """Structure only: per backend, model_only / end_to_end / decode_only rows with the same batch and workers."""
    document = json.loads((smoke_report / "bench.json").read_text())
    rows = [r for r in document["rows"] if r["task"] == "predict"]
    assert [r["backend"] for r in rows if r["stage"] == "serial"] == ["baseline:serial"]
    backends = {(r["backend"], r["precision"]) for r in rows if r["stage"] == "end_to_end"}
    assert backends == {
        ("eager+channels_last+fold_bn", "fp32"),
        ("onnxruntime:cpu:per_core", "fp32"),
        ("onnxruntime:cpu:per_core", "int8"),
    }
    for e2e in (r for r in rows if r["stage"] == "end_to_end"):
        same = [
            r
            for r in rows
            if r["stage"] in ("model_only", "decode_only")
            and r["batch_size"] == e2e["batch_size"]
            and r["workers"] == e2e["workers"]
        ]
        model = [r for r in same if (r["backend"], r["precision"]) == (e2e["backend"], e2e["precision"])]
        assert len(model) == 1 and model[0]["stage"] == "model_only"
        extra = e2e["extra"]
        assert extra["model_only_img_s"] == model[0]["throughput_img_s"]
        assert extra["e2e_over_model_only"] == pytest.approx(
            e2e["throughput_img_s"] / model[0]["throughput_img_s"], abs=1e-3
        )
        assert extra["files"] == 6 and extra["error_rows"] == 0 and e2e["workers"] == 1
        written = (
            (
                smoke_report / f"predict_{'torch' if 'eager' in e2e['backend'] else 'onnx'}_"
                f"{e2e['precision']}.csv"
            )
            .read_text()
            .splitlines()
        )
        assert len(written) == 1 + 6 and written[0] == "path,p_fake,label,error"
    goals = [t for t in document["targets"] if t["target"].startswith("end to end / model only")]
    assert len(goals) == 3 and all(t["goal"] == ">= 0.70" for t in goals)


def test_predict_targets_read_the_end_to_end_ratio() -> None:
    e2e = _row(
        task="predict",
        stage="end_to_end",
        backend="onnxruntime:cpu:per_core",
        throughput=300.0,
        extra={"e2e_over_model_only": 0.75, "model_only_img_s": 400.0, "decode_only_img_s": 900.0},
    )
    slow = _row(
        task="predict",
        stage="end_to_end",
        precision="int8",
        throughput=300.0,
        extra={"e2e_over_model_only": 0.5, "model_only_img_s": 600.0, "decode_only_img_s": 310.0},
    )
    model = _row(task="predict", stage="model_only", throughput=400.0)
    goals = [t for t in targets([e2e, slow, model]) if t["target"].startswith("end to end")]
    assert [t["met"] for t in goals] == [True, False]
    assert goals[1]["measured"] == "300 of 600 img/s = 0.50 (decode only 310 img/s, 0 workers)"


def test_ratio_uses_the_matching_baseline() -> None:
    rows = [
        _row(backend="baseline:eager", throughput=10.0, stage="single", batch_size=1),
        _row(backend="onnxruntime:cpu", throughput=50.0),  # batch rows divide by the single-image baseline
        _row(backend="baseline:eager", throughput=40.0, stage="single", batch_size=1, image_size=128),
        _row(backend="eager", throughput=80.0, image_size=128),
        _row(task="data", backend="baseline:pil", throughput=100.0, stage="decode"),
        _row(task="data", backend="baseline:pil", throughput=20.0, stage="train_aug"),
        _row(task="data", backend="auto", throughput=30.0, stage="train_aug"),
        _row(task="train", backend="eager", throughput=5.0),  # no baseline for its task: no ratio
    ]
    compute_ratios(rows)
    assert [r.ratio_to_baseline for r in rows] == [1.0, 5.0, 1.0, 2.0, 1.0, 1.0, 1.5, None]


def test_validate_rows_reports_each_problem() -> None:
    good = _row(backend="baseline:eager").to_dict()
    assert validate_rows([good]) == []
    missing = {k: v for k, v in good.items() if k != "latency_ms_p99"}
    bad_device = good | {"device": "gpu0"}
    negative = good | {"throughput_img_s": -1.0}
    no_baseline = _row(task="train").to_dict()
    problems = validate_rows([missing, bad_device, negative, no_baseline])
    assert any("missing ['latency_ms_p99']" in p for p in problems)
    assert any("gpu0" in p for p in problems)
    assert any("throughput_img_s=-1.0" in p for p in problems)
    assert any("task train: no baseline" in p for p in problems)


def test_targets_pick_the_best_accurate_backend() -> None:
    fast_but_wrong = _row(
        backend="onnxruntime:cpu", precision="int8", throughput=2000.0, extra={"auroc_delta": -0.02}
    )
    accurate = _row(
        backend="onnxruntime:cpu", precision="int8", throughput=950.0, extra={"auroc_delta": 0.001}
    )
    fp32 = _row(backend="onnxruntime:cpu", throughput=420.0)
    goals = {t["target"]: t for t in targets([fast_but_wrong, accurate, fp32])}
    best = goals["CPU best inference, 224 px"]
    assert best["met"] is True and best["measured"].startswith("950 img/s")
    assert goals["CPU fp32 inference, 224 px"]["met"] is True
    assert goals["140k index build"]["measured"] == "not measured"
    assert goals["GPU (H100) inference"]["met"] is None


def test_folder_image_set_times_on_train_and_scores_on_the_unseen_test_split(tmp_path: Path) -> None:
    root = make_folder_tree(tmp_path / "faces", per_class=10)
    timed, labelled = folder_image_set(root, n_images=6, n_labelled=100, split_ratios=[0.6, 0.2, 0.2])
    split = index_folder(root, [0.6, 0.2, 0.2], 0)
    assert set(timed) <= set(split["train"]) and sorted(labelled) == sorted(split["test"])
    assert [t for _, t in timed] == [0, 1, 0, 1, 0, 1]  # balanced prefix: calibration sees both classes
    assert all(("fake" in Path(p).name) == bool(t) for p, t in timed + labelled)


def test_folder_image_set_refuses_a_test_split_with_one_class(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    for split in ("train", "valid"):
        make_folder_tree(root / split, per_class=2, size=32)
    write_image(root / "test" / "real" / "real_0.jpg", seed=1, size=32)
    (root / "test" / "fake").mkdir()
    with pytest.raises(ValueError, match=r"images.root=.*both classes in the test split"):
        folder_image_set(root, 4, 4, [0.8, 0.1, 0.1])
