"""ONNX Runtime sessions for the bench: one session on every core (CUDA provider when asked for), or one per core.

The graphs are the ones `python -m deepfake_lightning.export` ships (`inference.export_model`,
`inference.quantize`), so the bench times exactly what is deployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfake_lightning.inference.backends import INPUT_NAME, OUTPUT_NAMES
from deepfake_lightning.inference.ort_sessions import PerCoreSessions, session_options


def ort_session(path: str | Path, threads: int, device: torch.device, per_core: bool = False) -> Any:
    """An ORT session with every graph optimisation (the CUDA provider when asked for), or `PerCoreSessions`."""
    import onnxruntime as ort  # lazy: optional extra [export]: ONNX Runtime is installed only with it

    if per_core:
        return PerCoreSessions(path, threads)
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), session_options(threads), providers=providers)


def ort_providers() -> list[str]:
    import onnxruntime as ort  # lazy: optional extra [export]: ONNX Runtime is installed only with it

    return list(ort.get_available_providers())


def run_session(session: Any, batch: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_NAMES[0]], {INPUT_NAME: batch})[0]
