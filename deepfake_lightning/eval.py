"""`python -m deepfake_lightning.eval ckpt_path=... [data=...]`: test a checkpoint on any data config.

Writes the test outputs (metrics with CIs at the validation-chosen threshold, predictions, plots; with
`eval.aggregate_by=video` also per video, as `test_results.json`'s `video_level`), the model
bundle `bundle.json` (the checkpoint with the calibration applied here and these test metrics: servable as is),
then the optional extras -- cross-dataset table, robustness grid, explanations -- and REPORT.md from the files.
"""

from __future__ import annotations

import json
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from deepfake_lightning.callbacks import SkippedImagesCallback
from deepfake_lightning.distributed import gather_test_outputs
from deepfake_lightning.evaluation.cross_dataset import evaluate_extra_sets, write_cross_dataset
from deepfake_lightning.evaluation.eval_setup import (
    resolve_calibration,
    start_evaluation,
    write_evaluation_bundle,
)
from deepfake_lightning.evaluation.explanations import write_explanations
from deepfake_lightning.evaluation.per_group import carried_columns, report_by
from deepfake_lightning.evaluation.report import write_report
from deepfake_lightning.evaluation.robustness import evaluate_robustness, write_robustness
from deepfake_lightning.evaluation.test_outputs import collected_predictions, write_test_outputs
from deepfake_lightning.utils.config_schema import EvalSettings
from deepfake_lightning.utils.hydra_main import hydra_main
from deepfake_lightning.utils.task import run_task

AGGREGATE_BY_KEY = "eval.aggregate_by"


def _carried_columns(settings: EvalSettings, datamodule: Any, paths: list[str]) -> dict[str, dict[str, str]]:
    """`{column: {path: value}}` to carry into the predictions: `eval.aggregate_by`'s labels-CSV column (with
    no paths: only checks that the CSV and the column exist)."""
    if not settings.aggregate_by:
        return {}
    column = settings.aggregate_by
    return {column: datamodule.labels_csv_column(column, paths, AGGREGATE_BY_KEY)}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    aggregation = EvalSettings.check(cfg.get("eval") or {})
    model, output_dir = start_evaluation(cfg)
    module = model.module
    datamodule = instantiate(cfg.data)
    _carried_columns(aggregation, datamodule, [])  # a missing labels CSV or column is named before testing
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[SkippedImagesCallback(str(output_dir))])
    device = trainer.strategy.root_device

    trainer.test(module, datamodule=datamodule)
    gather_test_outputs(module)  # every rank (a DDP collective): after it, every test image once
    if not trainer.is_global_zero:  # DDP ranks > 0: rank 0 writes every file, once
        return {"status": "ok", "global_rank": trainer.global_rank}
    calibration, validation_scores = resolve_calibration(cfg, model, datamodule, output_dir, device)
    temperature, threshold = calibration["temperature"], calibration["threshold"]
    extra = {"checkpoint": str(cfg.ckpt_path), "model": module.size(), "data": datamodule.counts()}
    datamodule.write_split_manifest(output_dir / "splits.csv")
    extra["calibration"] = calibration
    paths = list(module.test_outputs.get("path", []))
    columns = {**carried_columns(datamodule), **_carried_columns(aggregation, datamodule, paths)}
    results = write_test_outputs(
        module,
        output_dir,
        extra,
        temperature,
        threshold,
        columns=columns,
        aggregation=aggregation,
        report_by=report_by(datamodule),
    )
    write_evaluation_bundle(cfg, model, calibration, results, output_dir, validation_scores)

    n_bootstrap = int(cfg.get("n_bootstrap", 1000))
    extra_sets = cfg.get("extra_eval_sets") or {}
    if extra_sets:
        sets = evaluate_extra_sets(
            module, cfg.data, extra_sets, output_dir, temperature, threshold, device, n_bootstrap
        )
        primary = str(
            cfg.data_name
        )  # set by start_evaluation: the training run's data config, or the given one
        primary = f"{primary} (primary)" if primary in sets else primary
        write_cross_dataset({primary: results, **sets}, output_dir, calibration, primary)
    if OmegaConf.select(cfg, "robustness.enabled", default=False):
        rows = evaluate_robustness(
            module, datamodule, cfg.corruptions, temperature, threshold, device, n_bootstrap, int(cfg.seed)
        )
        write_robustness(rows, output_dir, calibration, int(cfg.seed))
    if OmegaConf.select(cfg, "explain.enabled", default=False):
        write_explanations(
            module,
            collected_predictions(module, temperature),
            threshold,
            datamodule.test_dataloader().dataset,
            datamodule.normalize,
            output_dir / "explanations.png",
            int(cfg.explain.n_per_group),
            int(cfg.seed),
            device,
        )
    write_report(output_dir)
    (output_dir / "run_summary.json").write_text(json.dumps({"status": "ok"}, indent=2))
    return results


@hydra_main("eval")
def main(cfg: DictConfig) -> None:
    run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
