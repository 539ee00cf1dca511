"""Test-split metrics under a grid of image corruptions (``robustness.json``, ``.md``, ``.png``).

The checkpoint's validation-fitted temperature and threshold are applied unchanged to every condition: the
question is how much a deployed detector degrades, not how well it could be re-tuned for each corruption.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from deepfake_lightning.data.dataset import collate_skipping
from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.evaluation.corruptions import CORRUPTIONS, CorruptedTransform
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.markdown import operating_point_note, robustness_markdown
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.plots import plot_robustness

log = logging.getLogger(__name__)


def corruption_grid(corruptions: Mapping[str, Sequence[float]]) -> list[tuple[str, float | None]]:
    """``[("clean", None), (name, severity), ...]`` in config order, mildest severity first."""
    unknown = set(corruptions) - set(CORRUPTIONS)
    if unknown:
        raise ValueError(f"unknown corruption(s) {sorted(unknown)}; allowed {sorted(CORRUPTIONS)}")
    return [("clean", None)] + [
        (name, float(s)) for name, levels in corruptions.items() for s in levels or []
    ]


def evaluate_robustness(
    module: Any,
    datamodule: Any,
    corruptions: Mapping[str, Sequence[float]],
    temperature: float = 1.0,
    threshold: float = 0.5,
    device: Any = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (corruption, severity) on the datamodule's test split.

    The corruption wraps the test dataset's own transform, so decoding and eval preprocessing are exactly
    those of a plain test run; only the decoded image is altered first.
    """
    clean = datamodule.test_dataloader().dataset
    rows = []
    for name, severity in corruption_grid(corruptions):
        loader = DataLoader(
            corrupted(clean, name, severity, seed),
            batch_size=datamodule.batch_size,
            num_workers=datamodule.num_workers,
            collate_fn=collate_skipping,
        )
        preds = predict_logits(module, loader, device)
        p_fake = apply_temperature(preds["logit"], temperature)
        metrics = compute_metrics(
            p_fake, preds["label"], threshold=threshold, n_bootstrap=n_bootstrap, seed=seed
        )
        rows.append({"corruption": name, "severity": severity, **metrics})
        log.info("robustness %s %s: AUROC %.4f", name, severity, metrics["auroc"]["value"])
    return rows


def corrupted(dataset: Any, name: str, severity: float, seed: int) -> Any:
    """A copy of the test dataset whose decoded images are corrupted before its own transform; a concatenation
    of sources (`data=multi`, each with its own transform) is corrupted part by part."""
    parts = getattr(dataset, "datasets", None)
    if parts is not None:
        return type(dataset)([corrupted(part, name, severity, seed) for part in parts])
    copied = copy.copy(dataset)
    copied.transform = CorruptedTransform(name, severity, dataset.transform, seed)
    return copied


def write_robustness(
    rows: Sequence[Mapping[str, Any]], output_dir: str | Path, calibration: Mapping[str, Any], seed: int = 0
) -> Path:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "split": "test",
        "seed": seed,
        "temperature": calibration.get("temperature"),
        "threshold": calibration.get("threshold"),
        "threshold_rule": calibration.get("threshold_rule"),
        "results": list(rows),
    }
    (output_dir / "robustness.json").write_text(json.dumps(payload, indent=2, default=float))
    text = (
        "# Robustness (test split under corruptions)\n\n"
        "Severity: JPEG quality, downscale factor, blur sigma (px), noise std (fraction of 255), grayscale "
        "blend amount.\n\n" + robustness_markdown(rows) + "\n" + operating_point_note(calibration) + "\n"
    )
    (output_dir / "robustness.md").write_text(text)
    plot_robustness(rows, output_dir / "robustness.png")
    return output_dir / "robustness.json"
