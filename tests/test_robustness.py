"""Corruption grid: deterministic corruptions, robustness.json/.md/.png, and the grid inside an eval run."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from deepfake_lightning.bundle import open_model
from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.evaluation.corruptions import CORRUPTIONS, CorruptedTransform, corrupt
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.robustness import corruption_grid
from deepfake_lightning.robustness import robustness
from tests.conftest import CONF_DIR
from tests.tiny_run import compose_at, eval_config, shared_tiny_run

DEFAULT_GRID = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "corruptions" / "default.yaml"))


def face_like(seed: int = 0, size: int = 64) -> np.ndarray:
    """Smooth gradients plus texture, so every corruption visibly changes it and harsher means more change."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, (xx + yy) / 2], axis=-1) * 200 + rng.normal(0, 20, (size, size, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_default_grid_is_clean_plus_eleven_conditions() -> None:
    grid = corruption_grid(DEFAULT_GRID)
    assert grid[0] == ("clean", None)
    assert grid[1:] == [
        ("jpeg", 90.0), ("jpeg", 70.0), ("jpeg", 50.0), ("jpeg", 30.0), ("downscale", 0.5), ("downscale", 0.25),
        ("blur", 1.0), ("blur", 2.0), ("noise", 0.02), ("noise", 0.05), ("grayscale", 1.0),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown corruption"):
        corruption_grid({"fog": [1]})


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_harsher_severity_changes_the_image_more(name: str) -> None:
    image = face_like()
    levels = {
        "jpeg": (90, 30),
        "downscale": (0.5, 0.25),
        "blur": (1, 2),
        "noise": (0.02, 0.05),
        "grayscale": (0.5, 1),
    }
    mild, harsh = (corrupt(image, name, s) for s in levels[name])
    assert mild.shape == image.shape and mild.dtype == np.uint8
    assert 0 < change(image, mild) < change(image, harsh)


def test_corruptions_are_deterministic_per_image() -> None:
    a, b = face_like(1), face_like(2)
    first = corrupt(a, "noise", 0.05, seed=3)
    corrupt(b, "noise", 0.05, seed=3)  # another image in between must not shift a's noise
    assert np.array_equal(first, corrupt(a, "noise", 0.05, seed=3))
    assert not np.array_equal(first, corrupt(a, "noise", 0.05, seed=4))
    gray = corrupt(a, "grayscale", 1.0)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    transform = pickle.loads(pickle.dumps(CorruptedTransform("jpeg", 50, np.copy)))  # DataLoader workers
    assert np.array_equal(transform(a), corrupt(a, "jpeg", 50))
    assert np.array_equal(CorruptedTransform("clean", None, np.copy)(a), a)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return shared_tiny_run(tmp_path_factory, ("calibration.threshold_rule=eer",))


def test_robustness_command_writes_the_grid(tiny_run: tuple[Path, Path, Path]) -> None:
    base, run, data_root = tiny_run
    overrides = ["data=folder", f"data.root={data_root}", "data.num_workers=0", "device=cpu", "n_bootstrap=50",
                 f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"]  # fmt: skip
    cfg = compose_at("robustness", overrides, base / "robustness", base)
    robustness(cfg)
    out = base / "robustness"
    payload = json.loads((out / "robustness.json").read_text())
    rows = payload["results"]
    assert [(r["corruption"], r["severity"]) for r in rows] == corruption_grid(DEFAULT_GRID)
    calibration = json.loads((run / "calibration.json").read_text())
    assert (
        payload["threshold"] == pytest.approx(calibration["threshold"]) and payload["threshold_rule"] == "eer"
    )
    # "clean" is the plain test split: same scores as predicting the data module's own test loader
    datamodule = instantiate(cfg.data)
    plain = predict_logits(open_model(cfg.ckpt_path).module, datamodule.test_dataloader())
    p_plain = apply_temperature(plain["logit"], calibration["temperature"])
    expected = compute_metrics(p_plain, plain["label"], threshold=payload["threshold"], n_bootstrap=0)
    assert rows[0]["n"] == expected["n"] == 4
    assert rows[0]["auroc"]["value"] == expected["auroc"]["value"]
    assert rows[0]["accuracy"]["value"] == expected["accuracy"]["value"]
    for row in rows:
        assert {"value", "ci_low", "ci_high"} <= set(row["auroc"]) and {"value", "ci_low"} <= set(
            row["accuracy"]
        )
    table = [line for line in (out / "robustness.md").read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # header + one row per condition
    assert (out / "robustness.png").stat().st_size > 0


def test_eval_can_run_the_grid_into_its_report(tiny_run: tuple[Path, Path, Path]) -> None:
    base, run, data_root = tiny_run
    overrides = ["data=folder", f"data.root={data_root}", "robustness.enabled=true", "explain.enabled=false",
                 "n_bootstrap=20"]  # fmt: skip
    cfg = eval_config(base, "eval_robust", run / "checkpoints" / "best.ckpt", overrides)
    with open_dict(cfg):
        cfg.corruptions = {"jpeg": [30], "grayscale": [1.0]}
    evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    rows = json.loads((out / "robustness.json").read_text())["results"]
    assert [r["corruption"] for r in rows] == ["clean", "jpeg", "grayscale"]
    report = (out / "REPORT.md").read_text()
    assert "## Robustness" in report and "![robustness](robustness.png)" in report
