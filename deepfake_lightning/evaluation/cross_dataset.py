"""Cross-dataset evaluation: one checkpoint, its validation-fitted T and threshold, several test sets, one table.

An extra set is a data-config node. Without ``_target_`` it is a ``{real,fake}`` folder used entirely as test
data (``layout: folder``, ``use_all_for_test: true``), so ``{lfw: {root: /data/lfw}}`` is enough; image
size, normalisation, batch size and workers are taken from the primary data config either way, because the
checkpoint must see every set through the same preprocessing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.evaluation.calibration import apply_temperature
from deepfake_lightning.evaluation.logits import predict_logits
from deepfake_lightning.evaluation.markdown import cross_dataset_markdown, operating_point_note
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.per_group import (
    carried_columns,
    column_values,
    per_value_results,
    report_by,
)
from deepfake_lightning.evaluation.predictions import write_predictions_csv

log = logging.getLogger(__name__)

# the network input (size, normalisation, the face pipeline the checkpoint records, as eval applied it to the
# primary) and the loader; an extra set of crops `prepare` made ahead sets its own face_crop.enabled=false
SHARED_DATA_KEYS = (
    "image_size",
    "face_crop",
    "preprocess",
    "normalize",
    "batch_size",
    "num_workers",
    "on_bad_image",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
)
FOLDER_DEFAULTS = {
    "_target_": "deepfake_lightning.data.DeepfakeDataModule",
    "layout": "folder",
    "use_all_for_test": True,
}


def _plain(node: Any) -> dict[str, Any]:
    return (
        dict(OmegaConf.to_container(node, resolve=True)) if isinstance(node, DictConfig) else dict(node or {})
    )


def extra_set_config(primary_data: Any, overrides: Any) -> dict[str, Any]:
    """The data node of one extra set: shared settings of the primary, folder defaults, then its own keys."""
    primary, own = _plain(primary_data), _plain(overrides)
    node = {key: primary[key] for key in SHARED_DATA_KEYS if key in primary}
    if "_target_" not in own:
        node.update(FOLDER_DEFAULTS)
    node.update(own)
    return node


def evaluate_set(
    module: Any,
    data_node: Mapping[str, Any],
    temperature: float,
    threshold: float,
    device: Any = None,
    n_bootstrap: int = 1000,
    predictions_csv: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of ``module`` on the test split of one data node (T and threshold applied, not refitted)."""
    datamodule = instantiate(OmegaConf.create(dict(data_node)))
    preds = predict_logits(module, datamodule.test_dataloader(), device)
    p_fake = apply_temperature(preds["logit"], temperature)
    results = compute_metrics(p_fake, preds["label"], threshold=threshold, n_bootstrap=n_bootstrap)
    rows = column_values(preds["path"], carried_columns(datamodule))  # data=multi: per source too
    by = report_by(datamodule)
    results.update(per_value_results(rows, by, p_fake, preds["label"], threshold, n_bootstrap=n_bootstrap))
    results.update(
        temperature=float(temperature), root=str(data_node.get("root", "")), skipped=len(preds["skipped"])
    )
    if predictions_csv is not None:
        write_predictions_csv(predictions_csv, preds["path"], preds["label"], preds["logit"], p_fake, rows)
    return results


def evaluate_extra_sets(
    module: Any,
    primary_data: Any,
    extra_sets: Mapping[str, Any],
    output_dir: str | Path,
    temperature: float,
    threshold: float,
    device: Any = None,
    n_bootstrap: int = 1000,
) -> dict[str, dict[str, Any]]:
    """Evaluate every named extra set; per-set predictions go to ``cross_dataset/<name>_predictions.csv``."""
    results = {}
    for name, overrides in extra_sets.items():
        node = extra_set_config(primary_data, overrides)
        log.info("cross-dataset: evaluating %s (%s)", name, node.get("root", node.get("_target_")))
        csv_path = Path(output_dir) / "cross_dataset" / f"{name}_predictions.csv"
        results[str(name)] = evaluate_set(module, node, temperature, threshold, device, n_bootstrap, csv_path)
    return results


def write_cross_dataset(
    sets: Mapping[str, Mapping[str, Any]],
    output_dir: str | Path,
    calibration: Mapping[str, Any],
    primary: str | None = None,
) -> Path:
    """``cross_dataset.json`` (full metrics per set) and ``cross_dataset.md`` (one row per set); ``primary``
    names the eval's own data config among ``sets``, so tables built from several runs can leave it out."""
    output_dir = Path(output_dir)
    payload = {
        "primary": primary,
        "temperature": calibration.get("temperature"),
        "threshold": calibration.get("threshold"),
        "threshold_rule": calibration.get("threshold_rule"),
        "sets": dict(sets),
    }
    (output_dir / "cross_dataset.json").write_text(json.dumps(payload, indent=2, default=float))
    note = operating_point_note(calibration)
    (output_dir / "cross_dataset.md").write_text(
        "# Cross-dataset evaluation\n\n" + cross_dataset_markdown(sets, note)
    )
    return output_dir / "cross_dataset.json"
