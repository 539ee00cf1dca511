"""Synthetic dataset: Kaggle layout, determinism, generate-once semantics, and no colour shortcut."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

from deepfake_lightning.data import SyntheticDataModule
from deepfake_lightning.data.synthetic import (
    META_NAME,
    _parse_cli,
    generate_synthetic_dataset,
    is_generated,
    main,
    render_image,
)
from deepfake_lightning.data.synthetic_datamodule import GENERATION_LOCK

SMALL = {"n_train": 4, "n_valid": 2, "n_test": 3, "image_size": 32}


def _rows(out: Path, split: str) -> list[dict[str, str]]:
    with open(out / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_layout_and_csvs(tmp_path: Path) -> None:
    root = generate_synthetic_dataset(tmp_path, **SMALL)
    assert root == tmp_path / "real_vs_fake" / "real-vs-fake"
    ids = []
    for split, n in (("train", 4), ("valid", 2), ("test", 3)):
        with open(tmp_path / f"{split}.csv", newline="") as f:
            assert f.readline().strip() == "original_path,id,label,label_str,path"
        rows = _rows(tmp_path, split)
        assert len(rows) == 2 * n
        for cls in ("real", "fake"):
            assert len(list((root / split / cls).glob("*.jpg"))) == n
        for r in rows:
            split_dir, cls, name = r["path"].split("/")
            assert split_dir == split and name == r["id"] and r["label_str"] == cls
            assert r["label"] == ("1" if cls == "real" else "0")
            assert r["original_path"].endswith(r["path"])
            with Image.open(root / r["path"]) as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (32, 32)
            ids.append(r["id"])
    assert len(set(ids)) == len(ids)
    meta = json.loads((tmp_path / META_NAME).read_text())
    assert meta["n_train"] == 4 and meta["image_size"] == 32
    # Meta is the completion marker: written after every image and CSV.
    assert (tmp_path / META_NAME).stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in root.rglob("*.jpg"))


def test_deterministic_and_worker_independent(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path / "a", **SMALL)
    generate_synthetic_dataset(tmp_path / "b", **SMALL, workers=2)
    generate_synthetic_dataset(tmp_path / "c", **SMALL, seed=1)
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in jpgs)
    assert len({a[k] for k in jpgs}) == len(jpgs)  # no two images alike


def test_generate_once_and_regenerate(tmp_path: Path) -> None:
    root = generate_synthetic_dataset(tmp_path, **SMALL)
    some = next(root.rglob("*.jpg"))
    stamps = {p: p.stat().st_mtime_ns for p in [some, tmp_path / META_NAME, tmp_path / "train.csv"]}
    assert generate_synthetic_dataset(tmp_path, **SMALL, workers=2) == root  # workers is not a parameter
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    generate_synthetic_dataset(tmp_path, **{**SMALL, "n_train": 2})  # changed params: rebuilt, old files gone
    assert len(_rows(tmp_path, "train")) == 4
    assert len(list((root / "train" / "real").glob("*.jpg"))) == 2
    assert json.loads((tmp_path / META_NAME).read_text())["n_train"] == 2

    sentinel = root / "train" / "real" / "sentinel.txt"
    sentinel.write_text("left by an interrupted run")
    (tmp_path / META_NAME).unlink()  # an interrupted run leaves no meta: it must not count as complete
    generate_synthetic_dataset(tmp_path, **{**SMALL, "n_train": 2})
    assert (tmp_path / META_NAME).is_file() and not sentinel.exists()


def test_classes_share_pixel_statistics_and_differ_in_traces(tmp_path: Path) -> None:
    """No shortcut through colour/brightness, but a generic spectral detector finds the traces."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    generate_synthetic_dataset(tmp_path, n_train=300, n_valid=0, n_test=300, image_size=64)
    root = tmp_path / "real_vs_fake" / "real-vs-fake"
    data = {}
    for split in ("train", "test"):
        rows = _rows(tmp_path, split)
        x = np.stack([np.asarray(Image.open(root / r["path"]), np.float32) for r in rows])
        data[split] = (x, np.array([int(r["label"]) for r in rows]))

    def colour(x: np.ndarray) -> np.ndarray:
        m = x.mean((1, 2))
        return np.c_[m, m.mean(1)]

    def spectrum(x: np.ndarray) -> np.ndarray:  # log power in radial frequency bands (grey level)
        g = x.mean(3)
        p = np.log(
            np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean((1, 2), keepdims=True)), axes=(1, 2))) ** 2 + 1e-3
        )
        yy, xx = np.mgrid[0:64, 0:64] - 32
        r = np.hypot(yy, xx)
        return np.stack([p[:, (r >= lo) & (r < lo + 4)].mean(1) for lo in range(0, 32, 4)], 1)

    aucs = {}
    for name, feat in (("colour", colour), ("spectrum", spectrum)):
        clf = LogisticRegression(max_iter=2000).fit(feat(data["train"][0]), data["train"][1])
        aucs[name] = roc_auc_score(data["test"][1], clf.predict_proba(feat(data["test"][0]))[:, 1])
    assert 0.4 < aucs["colour"] < 0.6, aucs
    assert aucs["spectrum"] > 0.75, aucs


def test_jpeg_quality_range_is_shared(tmp_path: Path) -> None:
    """Both classes are encoded with the requested quality range (no compression shortcut)."""
    for cls in ("real", "fake"):
        for i in range(3):
            q_lo = Image.open(io.BytesIO(render_image(0, "train", cls, i, 32, (50, 50)))).quantization
            q_hi = Image.open(io.BytesIO(render_image(0, "train", cls, i, 32, (95, 95)))).quantization
            assert sum(q_lo[0]) > sum(q_hi[0])
    with pytest.raises(ValueError):
        generate_synthetic_dataset(tmp_path, image_size=30)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kw = _parse_cli([f"out_dir={tmp_path}", "n_train=2", "image_size=32", "jpeg_quality=80,90"])
    assert kw == {"out_dir": str(tmp_path), "n_train": 2, "image_size": 32, "jpeg_quality": (80, 90)}
    with pytest.raises(SystemExit):
        _parse_cli(["n_train=2"])
    main([f"out_dir={tmp_path}", "n_train=2", "n_valid=1", "n_test=1", "image_size=32"])
    out = capsys.readouterr().out
    assert "real-vs-fake" in out and "train {'real': 2, 'fake': 2}" in out


def test_a_second_generator_waits_for_the_first_then_reuses_its_set(tmp_path: Path) -> None:
    """Two SLURM jobs (or Optuna workers) of one multirun share a data dir: while another process holds the
    generation lock, prepare_data waits instead of deleting the files being written, then makes or reuses the set."""
    params = {"n_train": 2, "n_valid": 1, "n_test": 1}
    data = SyntheticDataModule(str(tmp_path), generated_size=32, image_size=32, num_workers=0, **params)
    other = FileLock(str(tmp_path / GENERATION_LOCK))  # its own file descriptor: to flock, another holder
    with other:
        second = threading.Thread(target=data.prepare_data)
        second.start()
        second.join(timeout=3)  # an unlocked generator writes these 8 tiny images in milliseconds
        assert second.is_alive(), "prepare_data did not wait for the lock"
        assert not (tmp_path / META_NAME).exists()
    second.join(timeout=60)
    assert not second.is_alive()
    assert is_generated(tmp_path, **params, image_size=32)
