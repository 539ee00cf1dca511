"""ONNX export, static int8 (QDQ) quantization with calibration images, and ONNX Runtime sessions.

Static QDQ quantization keeps fp32 in/out and inserts QuantizeLinear/DequantizeLinear pairs that ORT fuses
into integer kernels (VNNI on recent x86); per-channel weight scales keep the depthwise convolutions accurate.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepfake_lightning.inference.ort_sessions import PerCoreSessions, session_options

log = logging.getLogger(__name__)
INPUT_NAME, OUTPUT_NAME = "image", "logit"


def export_onnx(net: nn.Module, path: str | Path, image_size: int, opset: int = 17) -> Path:
    """fp32 ONNX graph with a dynamic batch axis (TorchScript exporter: needs no onnxscript)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.cpu().eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
        )
    return path


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of NCHW float32 batches."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._batches = iter(list(batches))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(
    fp32_path: str | Path, out_path: str | Path, calibration: Iterable[np.ndarray], cfg: Mapping[str, Any]
) -> Path:
    """Static QDQ int8: uint8 activations, int8 (per-channel) weights, ranges from the calibration batches."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    prepared = out_path.with_name(out_path.stem + "_prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(out_path),
        _Calibration(calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=bool(cfg["per_channel"]),
        calibrate_method=CalibrationMethod[cfg["calibrate_method"]],
        nodes_to_exclude=list(cfg.get("nodes_to_exclude") or []),
        op_types_to_quantize=list(cfg["op_types"]) if cfg.get("op_types") else None,
    )
    prepared.unlink(missing_ok=True)
    return out_path


def ort_session(path: str | Path, threads: int, device: torch.device, per_core: bool = False) -> Any:
    """An ORT session with every graph optimisation (the CUDA provider when asked for), or `PerCoreSessions`."""
    import onnxruntime as ort

    if per_core:
        return PerCoreSessions(path, threads)
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), session_options(threads), providers=providers)


def ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def run_session(session: Any, batch: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
