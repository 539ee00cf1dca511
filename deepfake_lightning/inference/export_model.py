"""Export a checkpoint to ONNX or TorchScript, with its model bundle `MODEL.json` beside it.

The exported graph returns raw logits (and the attention map when the model has one); temperature and
threshold stay in the bundle (copied from the checkpoint's, with its training data and test metrics), so a
re-calibration never needs a re-export. The batch axis is dynamic.
The legacy TorchScript-based ONNX exporter is used because the dynamo exporter needs onnxscript.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepfake_lightning.bundle import Export, LoadedModel, load_torchscript, open_model, write_model_bundle
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.inference.backends import INPUT_NAME, OUTPUT_NAMES, OnnxBackend
from deepfake_lightning.inference.quantize import quantize_int8

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 17


class ExportNet(nn.Module):
    """Wraps the plain detector so the graph also returns the attention map (Bx1xhxw) when there is one."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        attention = getattr(net, "attention", None)
        self.with_attention = bool(attention is not None and getattr(attention, "enabled", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        if self.with_attention:
            return logits, self.net.attention.last_map
        return logits


def output_names(net: nn.Module) -> list[str]:
    return list(OUTPUT_NAMES) if ExportNet(net).with_attention else [OUTPUT_NAMES[0]]


def _example(image_size: int) -> torch.Tensor:
    return torch.zeros(2, 3, image_size, image_size)


def export_onnx(net: nn.Module, path: Path, image_size: int, opset: int = DEFAULT_OPSET) -> Path:
    """Trace `net` (left in eval mode) to ONNX with a dynamic batch axis."""
    wrapper = ExportNet(net).eval()  # a fresh module starts in train mode; the exporter restores that mode
    names = output_names(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notices
        torch.onnx.export(
            wrapper,
            (_example(image_size),),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *names]},
            opset_version=opset,
            do_constant_folding=True,
        )
    net.eval()
    return path


def export_torchscript(net: nn.Module, path: Path, image_size: int) -> Path:
    """`torch.jit.trace`: the graph has no data-dependent control flow, so tracing is exact for any batch."""
    wrapper = ExportNet(net).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit deprecation notice
        traced = torch.jit.trace(wrapper, _example(image_size), check_trace=False)
        traced.save(str(path))
    net.eval()
    return path


def export_model(
    ckpt_path: str | Path | LoadedModel,
    output: str | Path,
    fmt: str = "onnx",
    opset: int = DEFAULT_OPSET,
    calibration: str | Path | None = "auto",
    quantize: str | None = None,
    calibration_images: list[Path] | None = None,
    eval_samples: list[tuple[str, int]] | None = None,
) -> Path:
    """Write the model to `output` and its bundle to `output.json`; returns the model path.

    `ckpt_path` is a checkpoint (or manifest) to open with `calibration`, or a model already opened.

    `quantize="int8"` (ONNX only) quantizes with ONNX Runtime: static QDQ when `calibration_images` are given,
    dynamic otherwise; with labelled `eval_samples` the AUROC of both models goes into the metadata.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: allowed {FORMATS}")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize!r}: allowed null or int8")
    if quantize and fmt != "onnx":
        raise ValueError("quantize=int8 needs format=onnx")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = ckpt_path if isinstance(ckpt_path, LoadedModel) else open_model(ckpt_path, calibration)
    net, bundle = model.net, model.bundle
    image_size = int(bundle.preprocessing["image_size"])
    fields: dict[str, Any] = {
        "source_checkpoint": model.path.name,
        "source_checkpoint_sha256": model.sha256,  # a calibration fitted for the checkpoint fits its exports
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, image_size, image_size], "dtype": "float32"},
        "outputs": output_names(net),
    }
    if fmt == "torchscript":
        export_torchscript(net, output, image_size)
    elif quantize is None:
        export_onnx(net, output, image_size, opset)
        fields["opset"] = opset
    else:
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(net, Path(tmp) / "fp32.onnx", image_size, opset)
            int8 = quantize_int8(
                fp32, Path(tmp) / "int8.onnx", bundle.preprocessing, calibration_images, eval_samples
            )
            shutil.copyfile(int8.path, output)
        fields.update(opset=opset, quantization=int8.summary)
        log.info("int8 quantization: %s", int8.summary)
    fields["parity_max_abs_diff_p_fake"] = parity(net, output, fmt, image_size, bundle.temperature)
    write_model_bundle(model, export=Export(output, fmt, fields, ExportNet(net).with_attention))
    log.info(
        "exported %s -> %s (+ %s.json); max |p_fake - PyTorch| = %.2e on random inputs",
        model.path,
        output,
        output.name,
        fields["parity_max_abs_diff_p_fake"],
    )
    return output


def parity(
    net: nn.Module, exported: Path, fmt: str, image_size: int, temperature: float, batch: int = 3
) -> float:
    """Max |p_fake(exported) - p_fake(PyTorch)| on a seeded random batch (another batch size than traced)."""
    inputs = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = apply_temperature(net.eval()(inputs).double().numpy(), temperature)
        if fmt == "torchscript":
            outputs = load_torchscript(exported)(inputs)
            logits = (outputs[0] if isinstance(outputs, tuple) else outputs).double().numpy()
        else:
            logits = OnnxBackend(exported)(inputs)[0]
    return float(abs(apply_temperature(logits, temperature) - reference).max())
