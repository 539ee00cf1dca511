"""Shared fixtures of the inference tests: ONE tiny trained checkpoint per test process, and its ONNX export.

A test module gets them with `pytest_plugins = ("tests.fixtures_inference",)`; helpers are imported directly.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from PIL import Image

from tests.conftest import CONF_DIR, LFW_DIR, REPO_ROOT, TINY_TRAINER, make_folder_tree

IMAGE_SIZE = 32


def compose_entry(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose an entry-point config whose outputs go to `output_dir` (usable outside function-scoped fixtures)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO_ROOT)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir.parent / "logs")
        cfg.paths.data_dir = str(output_dir.parent / "data")
        cfg.paths.work_dir = str(REPO_ROOT)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/{real,fake}/*.jpg, 6 random 48-px images per class."""
    return make_folder_tree(tmp_path_factory.mktemp("tiny_data"), per_class=6, size=48)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    """RUN/checkpoints/best.ckpt of a 1-epoch, 2-batch, 32-px training run (with whatever calibration.json
    training writes beside it; tests that need none use `calibrated_ckpt(None)`)."""
    from deepfake_lightning.train import train

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    overrides = TINY_TRAINER + ["data=folder", f"data.root={tiny_data}", "test=false"]
    cfg = compose_entry("train", overrides, run)
    train(cfg)
    ckpt = run / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> Path:
    """`model.onnx` + `model.onnx.json` exported from `tiny_ckpt`."""
    from deepfake_lightning.inference.export_model import export_model

    return export_model(tiny_ckpt, tmp_path_factory.mktemp("tiny_export") / "model.onnx", fmt="onnx")


@pytest.fixture(scope="session")
def face_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/{real,fake}: 5 LFW photos per class (faces, not yet crops) and one noise image without a face."""
    if not (LFW_DIR / "real").is_dir():
        pytest.skip(
            f"shared LFW face-swap set not found at {LFW_DIR} (it lives in ../shared beside the repo)"
        )
    from deepfake_lightning.faces import centerface_model

    centerface_model.fetch_centerface()
    root = tmp_path_factory.mktemp("face_folder")
    for cls in ("real", "fake"):
        (root / cls).mkdir()
        for path in sorted((LFW_DIR / cls).glob("*.jpg"))[:5]:
            shutil.copy(path, root / cls / path.name)
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "real" / "zz_noise.png")
    return root


@pytest.fixture(scope="session")
def face_ckpt(tmp_path_factory: pytest.TempPathFactory, face_folder: Path) -> Path:
    """A tiny model trained with data.face_crop on (CenterFace, 64 px): its bundle records the face pipeline."""
    from deepfake_lightning.train import train

    run = tmp_path_factory.mktemp("face_run") / "run"
    overrides = [
        *TINY_TRAINER,
        "data=folder",
        f"data.root={face_folder}",
        "test=false",
        "data.face_crop.enabled=true",
        "data.face_crop.size=64",
        f"data.face_crop.cache_dir={run.parent / 'cache'}",
    ]
    train(compose_entry("train", overrides, run))
    return run / "checkpoints" / "best.ckpt"


def two_faces() -> np.ndarray:
    from deepfake_lightning.data.images import load_rgb

    left, right = (load_rgb(p) for p in sorted((LFW_DIR / "real").glob("*.jpg"))[:2])
    return np.concatenate([left, right], axis=1)


@pytest.fixture
def calibrated_ckpt(tmp_path: Path, tiny_ckpt: Path) -> Callable[..., Path]:
    """Copy the tiny checkpoint into a fresh RUN dir; with a calibration record, also write it as
    RUN/calibration.json and give the checkpoint a bundle applying it (as training does). `None`: a bare
    checkpoint with no bundle."""

    def _make(record: dict | None) -> Path:
        from deepfake_lightning.bundle import open_model, write_model_bundle

        ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_bytes(tiny_ckpt.read_bytes())
        if record is not None:
            source = tmp_path / "run" / "calibration.json"
            source.write_text(json.dumps(record))
            calibration = {"fitted_on": "valid", **record}
            write_model_bundle(
                open_model(ckpt, calibration=None), calibration=calibration, calibration_file=source
            )
        return ckpt

    return _make


def face_like_image(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def save_image(path: Path, array: np.ndarray, fmt: str | None = None, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    image.save(path, fmt)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Iterator[Path]:
    """Three good 64-px images plus one text file posing as a JPEG."""
    folder = tmp_path / "images"
    for i in range(3):
        save_image(folder / f"img_{i}.png", face_like_image(i))
    (folder / "broken.jpg").write_bytes(b"this is not an image")
    yield folder


def write_video(path: Path, frames: int = 30, size: tuple[int, int] = (96, 80), fps: int = 10) -> Path:
    """Encode a short MPEG-4 clip with PyAV: frame i is a flat grey of level 8*i (so frames differ)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(frames):
            image = np.full((size[1], size[0], 3), i * 8 % 256, np.uint8)
            image[: size[1] // 2] = rng.integers(0, 256, (size[1] // 2, size[0], 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
