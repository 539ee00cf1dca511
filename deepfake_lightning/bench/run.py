"""Orchestration of one bench run: presets, the shared image set and network, each task, the report."""

from __future__ import annotations

import logging
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.bench.data import bench_data
from deepfake_lightning.bench.end_to_end import bench_end_to_end
from deepfake_lightning.bench.faces import bench_faces
from deepfake_lightning.bench.images import bench_image_set, folder_image_set
from deepfake_lightning.bench.index import bench_index
from deepfake_lightning.bench.inference import bench_inference
from deepfake_lightning.bench.models import fit_head, load_network, prepared, reestimate_batchnorm
from deepfake_lightning.bench.profile import profile_model
from deepfake_lightning.bench.recipes import bench_recipes
from deepfake_lightning.bench.report import write_report
from deepfake_lightning.bench.rows import Row
from deepfake_lightning.bench.train import bench_train, train_step_fn
from deepfake_lightning.data.images import load_rgb
from deepfake_lightning.data.index import Sample
from deepfake_lightning.data.transforms import build_eval_transform
from deepfake_lightning.inference.export_model import export_onnx
from deepfake_lightning.inference.inputs import expand_inputs
from deepfake_lightning.inference.quantize import quantize_int8
from deepfake_lightning.utils.device import resolve_device

log = logging.getLogger(__name__)
PACKAGES = (
    "torch",
    "torchvision",
    "lightning",
    "onnx",
    "onnxruntime",
    "numpy",
    "opencv-python-headless",
    "pillow",
    "simplejpeg",
    "albumentations",
)


def with_preset(cfg: DictConfig) -> DictConfig:
    """`smoke=true` or `quick=true` merge their preset over the config (smoke wins when both are set)."""
    for name in ("quick", "smoke"):
        if cfg.get(name):
            cfg = OmegaConf.merge(cfg, cfg.presets[name])
    return cfg


def _tensors(samples: list[Sample], transform: Any) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([transform(load_rgb(path)) for path, _ in samples]).float().contiguous()
    return images, torch.tensor([float(t) for _, t in samples])


def prepare_network(net: Any, images: torch.Tensor, targets: torch.Tensor, cfg: DictConfig) -> dict[str, Any]:
    """Without a checkpoint: BatchNorm statistics from real images, then a head fitted on cached features."""
    n = cfg.inference.fit_images
    reestimate_batchnorm(net, list(images[:n].split(cfg.inference.batch_size)))
    loss = fit_head(net, images[:n], targets[:n], cfg.model.loss, cfg.inference.fit_head_steps)
    return {
        "model": "advanced_v2, random backbone (BatchNorm re-estimated) + head fitted on cached features",
        "fit_loss": round(loss, 4),
    }


def export_backends(
    net: Any, samples: list[Sample], preprocessing: dict[str, Any], cfg: DictConfig, out_dir: Path
) -> tuple[dict[str, Path], dict]:
    """fp32 ONNX and its static int8 (QDQ) version, as `export` makes them, calibrated on the timing images."""
    paths: dict[str, Path] = {}
    info: dict[str, Any] = {}
    if not cfg.inference.onnx:
        return paths, info
    paths["fp32"] = export_onnx(net, out_dir / "onnx" / "model_fp32.onnx", int(preprocessing["image_size"]))
    info["onnx_fp32_mb"] = round(paths["fp32"].stat().st_size / 1e6, 2)
    int8 = cfg.inference.int8
    if int8.enabled:
        calibration = [Path(path) for path, _ in samples[: int8.calibration_images]]
        options = OmegaConf.to_container(int8, resolve=True)
        quantized = quantize_int8(
            paths["fp32"], out_dir / "onnx" / "model_int8.onnx", preprocessing, calibration, options=options
        )
        paths["int8"] = quantized.path
        info["onnx_int8_mb"] = round(paths["int8"].stat().st_size / 1e6, 2)
    return paths, info


def _meta(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "unknown"
    )
    host = f"{platform.node()}: {cpu}, {os.cpu_count()} cores"
    if device.type == "cuda":
        host += f", {torch.cuda.get_device_name(device)}"
    return {
        "versions": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": host,
        "command": _command(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _command() -> str:
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # composed outside a Hydra app (tests): the argv is the best we have
        overrides = sys.argv[1:]
    return " ".join(["python -m deepfake_lightning.bench", *overrides])


def run_bench(cfg: DictConfig) -> dict[str, Any]:
    cfg = with_preset(cfg)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = set(cfg.tasks)
    rows: list[Row] = []
    notes: dict[str, Any] = {}
    samples: list[Sample] = []
    labelled: list[Sample] = []
    # index, stream, train and recipes make their own inputs
    needs_images = bool(tasks & {"data", "inference", "predict"}) or cfg.profile.enabled
    if needs_images and cfg.images.get("root"):
        samples, labelled = folder_image_set(
            cfg.images.root,
            cfg.images.n_images,
            cfg.images.n_labelled,
            list(cfg.images.split_ratios),
            cfg.images.split_seed,
        )
    elif needs_images:
        samples, labelled = bench_image_set(
            cfg.cache_dir,
            cfg.images.n_images,
            cfg.images.n_labelled,
            cfg.images.source_size,
            cfg.seed,
            cfg.images.generator_workers,
        )
    if "data" in tasks:
        pipeline = {**OmegaConf.to_container(cfg.data, resolve=True), **OmegaConf.to_container(cfg.pipeline)}
        pipeline |= {"decoder": cfg.data.get("decoder", "auto"), "source_size": cfg.images.source_size}
        rows += bench_data(samples, pipeline, device)
    if "index" in tasks:
        rows += bench_index(cfg.cache_dir, cfg.index)
    if "stream" in tasks:
        from deepfake_lightning.bench.stream import bench_stream  # needs litdata (the streaming extra)

        data = OmegaConf.to_container(cfg.data, resolve=True)
        rows += bench_stream(cfg.cache_dir, OmegaConf.to_container(cfg.stream, resolve=True), data, cfg.seed)
    if "recipes" in tasks:  # builds its own encoder per recipe from cfg.model
        rows += bench_recipes(OmegaConf.to_container(cfg.model, resolve=True), device, cfg.recipes)
    if "faces" in tasks:
        rows += bench_faces(samples, OmegaConf.to_container(cfg.faces, resolve=True))
    if tasks & {"train", "inference", "predict"} or cfg.profile.enabled:
        rows += _model_rows(cfg, tasks, device, samples, labelled, out_dir, notes)
    meta = _meta(cfg, device) | {"notes": notes}
    document = write_report(rows, out_dir, meta)
    log.info("bench: %d rows -> %s", len(rows), out_dir / "bench.md")
    return {"status": "ok" if "problems" not in document else "problems", "rows": len(rows)}


def _model_rows(
    cfg: DictConfig,
    tasks: set[str],
    device: torch.device,
    samples: list[Sample],
    labelled: list[Sample],
    out_dir: Path,
    notes: dict[str, Any],
) -> list[Row]:
    """The rows that need the network: train, inference, predict (and the profile, into `notes`)."""
    rows: list[Row] = []
    net, preprocessing = load_network(cfg.model, cfg.ckpt_path)
    if "train" in tasks:
        rows += bench_train(net, device, cfg.train, cfg.model.loss)
    if tasks & {"inference", "predict"} or cfg.profile.enabled:
        preprocessing = preprocessing or {
            "image_size": cfg.inference.image_size,
            "preprocess": cfg.data.preprocess,
            "normalize": OmegaConf.to_container(cfg.data.normalize),
        }
        if not cfg.inference.get("checkpoint_size", True):  # the network is fully convolutional
            preprocessing["image_size"] = cfg.inference.image_size
        transform = build_eval_transform(**preprocessing)
        images, targets = _tensors(samples, transform)
        if not cfg.ckpt_path:
            notes |= prepare_network(net, images, targets, cfg)
        else:
            notes["model"] = f"checkpoint {cfg.ckpt_path}"
        onnx_paths: dict[str, Path] = {}
        if tasks & {"inference", "predict"}:
            onnx_paths, info = export_backends(net, samples, preprocessing, cfg, out_dir)
            notes |= info
        if "inference" in tasks:
            rows += bench_inference(
                net,
                device,
                cfg.inference,
                images[: cfg.inference.batch_size],
                _tensors(labelled, transform),
                onnx_paths,
            )
        if "predict" in tasks:
            files = _predict_files(cfg, samples + labelled)
            predict_cfg = OmegaConf.to_container(cfg.predict, resolve=True)
            rows += bench_end_to_end(net, preprocessing, device, predict_cfg, files, onnx_paths, out_dir)
        if cfg.profile.enabled:
            notes["profile"] = _profile(net, device, images, cfg, out_dir)
    return rows


def _predict_files(cfg: DictConfig, bench_set: list[Sample]) -> list[Path]:
    """`predict.n_files` real files: every image file of `images.root` (any split), else the bench set."""
    n = int(cfg.predict.n_files)
    if cfg.images.get("root"):
        return expand_inputs(str(cfg.images.root))[:n]
    return [Path(path) for path, _ in bench_set][:n]


def _profile(net: Any, device: torch.device, images: torch.Tensor, cfg: DictConfig, out_dir: Path) -> dict:
    model = prepared(net, device, channels_last=True)
    batch = images[: cfg.inference.batch_size].to(device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def infer() -> None:
        model(batch)

    size = int(images.shape[-1])
    step = train_step_fn(net, device, size, cfg.train.batch_size, "fp32", True, False, cfg.model.loss)
    return profile_model(infer, step, device, cfg.profile, out_dir)
