"""Temperature scaling: ``p_fake = sigmoid(logit / T)``, one scalar fitted on validation logits.

T is found by golden-section search on ``log T`` over ``[log 0.05, log 100]`` rather than LBFGS: the NLL is
convex in ``1/T``, hence unimodal in ``log T``, so a bracketed search always converges, needs no gradients or
learning rate, and cannot diverge. On perfectly separable data the NLL keeps falling as T -> 0; the clamp to
``[T_MIN, T_MAX]`` stops it at 0.05 instead of producing 0 or inf.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepfake_lightning.evaluation.metrics import expected_calibration_error, to_numpy

T_MIN = 0.05
T_MAX = 100.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def binary_nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean BCE of ``sigmoid(logit / T)``, computed from logits so saturated scores stay finite."""
    z = to_numpy(logits) / float(temperature)
    y = to_numpy(labels)
    if z.size != y.size or z.size == 0:
        raise ValueError(f"logits and labels must be non-empty and equally long, got {z.size} and {y.size}")
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: Any, labels: Any, tol: float = 1e-6) -> float:
    """The T in [T_MIN, T_MAX] minimising validation NLL (see module docstring for why golden-section)."""
    z = to_numpy(logits)
    y = to_numpy(labels)
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN/inf; cannot fit a temperature")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (real) or 1 (fake)")

    def nll(log_t: float) -> float:
        return binary_nll(z, y, math.exp(log_t))

    lo, hi = math.log(T_MIN), math.log(T_MAX)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = nll(b)
    # The optimum may sit on the clamp (separable data); compare against the bounds themselves.
    candidates = [
        (fa, a),
        (fb, b),
        (nll(math.log(T_MIN)), math.log(T_MIN)),
        (nll(math.log(T_MAX)), math.log(T_MAX)),
    ]
    return float(np.clip(math.exp(min(candidates)[1]), T_MIN, T_MAX))


def apply_temperature(logits: Any, temperature: float) -> Any:
    """``sigmoid(logits / T)``; returns a torch tensor for tensor input, a float64 numpy array otherwise."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if hasattr(logits, "detach"):
        return (logits / temperature).sigmoid()
    z = to_numpy(logits) / temperature
    return np.exp(-np.logaddexp(0.0, -z))  # overflow-free sigmoid


def calibration_summary(logits: Any, labels: Any, temperature: float, fitted_on: str) -> dict[str, Any]:
    """The record stored in ``calibration.json``: T plus NLL/ECE before (T=1) and after scaling."""
    y = to_numpy(labels)
    return {
        "temperature": float(temperature),
        "fitted_on": fitted_on,
        "n": int(y.size),
        "nll_before": binary_nll(logits, y, 1.0),
        "nll_after": binary_nll(logits, y, temperature),
        "ece_before": expected_calibration_error(apply_temperature(to_numpy(logits), 1.0), y),
        "ece_after": expected_calibration_error(apply_temperature(to_numpy(logits), temperature), y),
    }
