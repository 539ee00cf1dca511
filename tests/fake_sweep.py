"""A small ablation sweep dir written directly (job dirs as train.py and Hydra leave them), for tests that read
sweeps without paying for training runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.predictions import write_predictions_csv
from deepfake_lightning.sweeps import write_sweep_summary

VARIANTS = (("baseline", "baseline", 1.0), ("attention", "attention_off", 0.3), ("loss", "loss_bce", 2.0))


def make_ablation_sweep(sweep: Path, n_test: int = 40, epochs: int = 3) -> Path:
    """Three variants scored on the same test images; signal strength sets how separable their logits are."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], n_test // 2)
    paths = [f"/data/x/test/{'fake' if y else 'real'}/{i:04d}.jpg" for i, y in enumerate(labels)]
    noise = rng.normal(size=labels.size)
    for num, (factor, variant, signal) in enumerate(VARIANTS):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- +experiment=fast\n- +ablation={variant}\n")
        (job / "config.yaml").write_text(
            f"optimized_metric: val/auroc\nablation:\n  factor: {factor}\n  variant: {variant}\n"
        )
        history = [
            {
                "epoch": e,
                "train/loss": 0.7 - 0.1 * e,
                "val/loss": 0.6 - 0.05 * e * signal,
                "val/auroc": 0.6 + 0.1 * e * signal / 2,
                "val/accuracy@0.5": 0.55 + 0.05 * e,
                "val/eer": 0.4 - 0.05 * e,
                "lr-AdamW": 0.001 / (e + 1),
                "epoch_seconds": 10.0,
            }
            for e in range(epochs)
        ]
        (job / "training_history.json").write_text(json.dumps(history))
        logits = signal * (labels - 0.5) + noise
        p_fake = 1 / (1 + np.exp(-logits))
        results = compute_metrics(p_fake, labels, n_bootstrap=200)
        (job / "test_results.json").write_text(json.dumps(results, default=float))
        summary = {"status": "ok", "val/auroc": max(h["val/auroc"] for h in history)}
        (job / "run_summary.json").write_text(json.dumps(summary))
        write_predictions_csv(job / "predictions.csv", paths, labels, logits, p_fake)
    write_sweep_summary(sweep, "val/auroc")
    return sweep
