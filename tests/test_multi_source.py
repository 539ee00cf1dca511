"""`data=multi`: each source keeps the split it gets alone, the training epoch mixes sources as `data.mix` says,
`source` reaches splits.csv and predictions.csv, and per-source metrics are the metrics of the source's rows."""

from __future__ import annotations

import csv
import inspect
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from deepfake_lightning.data import DatasetLayoutError, DeepfakeDataModule, MultiSourceDataModule
from deepfake_lightning.data.multi_sources import source_nodes
from deepfake_lightning.eval import evaluate
from deepfake_lightning.evaluation.metrics import METRIC_NAMES, compute_metrics
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from deepfake_lightning.sweeps import lodo
from deepfake_lightning.train import train
from deepfake_lightning.utils.config_validation import ConfigError, validate_config
from tests.conftest import REPO_ROOT, make_folder_tree
from tests.test_data_groups import grouped_tree
from tests.tiny_run import compose_at, eval_config

SHARED = REPO_ROOT.parent / "shared" / "data"
LODO_SETS = ("ffhq_stylegan", "dfdc_faces", "lfw_faceswap")


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A grouped set (40 source videos, each a real and its fake) and a plain one (20 per class)."""
    base = tmp_path_factory.mktemp("sets")
    return grouped_tree(base / "grouped", n_groups=40), make_folder_tree(
        base / "plain", per_class=20, size=16
    )


def _sources(grouped: Path, plain: Path) -> list[str]:
    return [
        f"+data.sources.grouped.root={grouped}",
        "+data.sources.grouped.group_by=source_video",
        f"+data.sources.plain.root={plain}",
        "+data.sources.plain.reencode_jpeg_quality=85",
        "+data.sources.plain.split_seed=3",
    ]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_each_source_keeps_the_split_it_gets_alone(compose_cfg, two_sets, tmp_path: Path) -> None:
    grouped, plain = two_sets
    multi = instantiate(compose_cfg("train", ["data=multi", *_sources(grouped, plain)]).data)
    multi.write_split_manifest(tmp_path / "multi.csv")
    rows = _rows(tmp_path / "multi.csv")
    assert list(rows[0]) == ["path", "split", "label", "group", "source"]
    alone = {
        "grouped": ["data=folder", f"data.root={grouped}", "data.group_by=source_video"],
        "plain": ["data=folder", f"data.root={plain}", "data.reencode_jpeg_quality=85", "data.split_seed=3"],
    }
    for name, overrides in alone.items():
        single = instantiate(compose_cfg("train", overrides).data)
        single.write_split_manifest(tmp_path / f"{name}.csv")
        expected = _rows(tmp_path / f"{name}.csv")
        mine = [{k: v for k, v in row.items() if k != "source"} for row in rows if row["source"] == name]
        assert mine == expected and len(expected) == (80 if name == "grouped" else 40)
    assert {row["group"] for row in rows if row["source"] == "plain"} == {""}
    # the per-source transform is the source's own: plain is re-encoded at q85, grouped is not
    assert [d.transform is not None for d in multi.test_dataloader().dataset.datasets] == [True, True]
    assert multi.source_modules["plain"].reencode_jpeg_quality == 85
    assert multi.source_modules["grouped"].reencode_jpeg_quality is None


def _epoch_sources(dm: MultiSourceDataModule, epoch: int = 0) -> tuple[Counter, list[int]]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    keys = [index for index, _ in loader.sampler]
    samples = loader.dataset.samples
    return Counter(dm.source_of[samples[k][0]] for k in keys), keys


def _module(two_sets, **kw) -> MultiSourceDataModule:
    grouped, plain = two_sets
    sources = {"grouped": {"root": str(grouped), "group_by": "source_video"}, "plain": {"root": str(plain)}}
    return MultiSourceDataModule(sources, num_workers=0, image_size=32, batch_size=4, **kw)


def test_mix_draws_each_source_its_share_of_every_epoch(two_sets) -> None:
    # training images: grouped 64 (32 groups), plain 32
    counts, _ = _epoch_sources(_module(two_sets))
    assert counts == {"grouped": 64, "plain": 32}  # concat: every training image once
    counts, _ = _epoch_sources(_module(two_sets, mix="equal"))
    assert counts == {"grouped": 32, "plain": 32}  # the largest epoch without repeats: plain used up
    dm = _module(two_sets, mix={"grouped": 0.8, "plain": 0.2})
    counts, keys = _epoch_sources(dm)
    assert counts == {"grouped": 64, "plain": 16} and len(set(keys)) == len(keys)  # 64 / 0.8 = 80 per epoch
    again, same = _epoch_sources(_module(two_sets, mix={"grouped": 0.8, "plain": 0.2}))
    assert same == keys  # a function of (seed, epoch) alone
    _, other = _epoch_sources(dm, epoch=1)
    assert other != keys
    counts, keys = _epoch_sources(_module(two_sets, mix={"grouped": 0.5, "plain": 0.5}, epoch_size=100))
    assert counts == {"grouped": 50, "plain": 50}  # plain's 32 images drawn in two passes, cut to 50
    assert max(Counter(keys).values()) == 2
    counts, _ = _epoch_sources(_module(two_sets, mix={"grouped+plain": 1.0}, epoch_size=30))
    assert counts == {"grouped": 20, "plain": 10}  # a "+" group shares its fraction by training size


def test_held_out_sources_serve_only_their_test_split(two_sets) -> None:
    dm = _module(two_sets, held_out="plain")
    dm.setup()
    by_split = {split: Counter(dm.source_of[p] for p, _ in samples) for split, samples in dm.index.items()}
    assert by_split["train"] == {"grouped": 64} and by_split["valid"] == {"grouped": 8}
    assert by_split["test"] == {"grouped": 8, "plain": 4}
    assert _epoch_sources(dm)[0] == {"grouped": 64}


@pytest.mark.parametrize(
    ("sources", "extra", "message"),
    [
        ({}, {}, "data.sources={}: expected at least one source"),
        (
            {"a": {"root": "GROUPED", "image_size": 64}},
            {},
            "data.sources.a.image_size=64: one value for every",
        ),
        (
            {"a": {"root": "GROUPED", "labels_csv": "no.csv"}},
            {},
            "data.sources.a.labels_csv='no.csv': file not",
        ),
        ({"a": {"root": "/nowhere"}}, {}, "data.sources.a.root='/nowhere': folder not found"),
        ({"a": {"root": "GROUPED", "batch_size": 0}}, {}, "data.sources.a.batch_size=0: one value"),
        (
            {"a": {"root": "GROUPED", "split_seed": "x"}},
            {},
            "data.sources.a.split_seed='x': expected an integer",
        ),
        ({"a": {"root": "GROUPED"}}, {"held_out": "b"}, "data.held_out='b': 'b' is not a source"),
        ({"a": {"root": "GROUPED"}}, {"held_out": "a"}, "holds out every source"),
        ({"a": {"root": "GROUPED"}}, {"mix": "even"}, "data.mix='even': expected concat, equal or"),
        ({"a": {"sources": "x"}}, {}, "data.sources.a.sources: a source cannot itself hold sources"),
    ],
)
def test_bad_sources_are_named_at_start(compose_cfg, two_sets, sources, extra, message) -> None:
    grouped, _ = two_sets
    given = [
        f"+data.sources.{name}.{key}={str(value).replace('GROUPED', str(grouped))}"
        for name, node in sources.items()
        for key, value in node.items()
    ]
    overrides = ["data=multi", *given, *(f"++data.{k}={v}" for k, v in extra.items())]
    with pytest.raises(ConfigError, match=None) as err:
        validate_config(compose_cfg("train", overrides))
    assert message in str(err.value), str(err.value)


def test_lodo_without_a_held_out_set_says_so(compose_cfg) -> None:
    with pytest.raises(ConfigError, match=r"data.held_out: missing; expected the source\(s\) to leave out"):
        validate_config(compose_cfg("train", ["+experiment=lodo"]))


def test_mix_names_training_sources_once(two_sets) -> None:
    for mix, message in [
        ({"grouped": 1.0}, "no share for training source(s) ['plain']"),
        ({"grouped": 0.5, "plian": 0.5}, "'plian' is not a training source"),
        ({"grouped": 0.5, "plain": 0.6}, "fractions >= 0 summing to 1"),
    ]:
        with pytest.raises(ConfigError, match=None) as err:
            _module(two_sets, mix=mix).train_dataloader()
        assert message in str(err.value)


def test_a_labels_csv_column_is_read_from_each_images_own_source(two_sets) -> None:
    """eval.aggregate_by=source_video on data=multi: each path's value comes from its source's labels CSV."""
    dm = _module(two_sets)
    dm.setup()
    grouped = [path for path, _ in dm.index["test"] if dm.source_of[path] == "grouped"]
    values = dm.labels_csv_column("source_video", grouped, "eval.aggregate_by")
    assert set(values) == set(grouped) and all(v.startswith("video") for v in values.values())
    with pytest.raises(DatasetLayoutError, match="eval.aggregate_by"):  # plain has no labels CSV
        dm.labels_csv_column("source_video", [], "eval.aggregate_by")


def test_a_file_in_two_sources_is_refused(two_sets) -> None:
    grouped, _ = two_sets
    dm = MultiSourceDataModule({"a": {"root": str(grouped)}, "b": {"root": str(grouped)}}, num_workers=0)
    with pytest.raises(DatasetLayoutError, match="is in sources 'a' and 'b'"):
        dm.setup()


@pytest.fixture(scope="module")
def multi_run(two_sets, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base dir, run dir) of one tiny training run on both sets, every test image scored."""
    base = tmp_path_factory.mktemp("multi_run")
    overrides = ["data=multi", *_sources(*two_sets), "trainer.limit_test_batches=1.0", "data.mix=equal"]
    train(compose_at("train", overrides, base / "run", base))
    return base, base / "run"


def test_training_run_reports_per_source_metrics_of_each_sources_rows(multi_run) -> None:
    _, run = multi_run
    results = json.loads((run / "test_results.json").read_text())
    preds = read_predictions_csv(run / "predictions.csv")
    assert Counter(preds["source"]) == {"grouped": 8, "plain": 4}  # every test image, with its source
    splits = {row["path"]: row["source"] for row in _rows(run / "splits.csv")}
    assert all(splits[path] == source for path, source in zip(preds["path"], preds["source"], strict=True))
    assert set(results["per_source"]) == {"grouped", "plain"} and results["n"] == 12
    for name, metrics in results["per_source"].items():
        rows = np.array(preds["source"]) == name
        alone = compute_metrics(preds["p_fake"][rows], preds["label"][rows], threshold=results["threshold"])
        assert metrics["n"] == rows.sum()
        for key in METRIC_NAMES:
            assert metrics[key]["value"] == pytest.approx(alone[key]["value"], nan_ok=True), key
            assert metrics[key]["ci_low"] == pytest.approx(alone[key]["ci_low"], nan_ok=True), key
    report = (run / "REPORT.md").read_text()
    assert "## Per source" in report and "| grouped | 8 (4/4)" in report and "| pooled | 12 (6/6)" in report


def test_eval_of_a_multi_source_model_scores_its_sources(multi_run) -> None:
    """Without data=, eval scores the checkpoint's own sources (from its bundle), per source, with the
    robustness grid and explanations working on the concatenated test split."""
    base, run = multi_run
    overrides = ["robustness.enabled=true", "explain.n_per_group=1", "n_bootstrap=50"]
    cfg = eval_config(base, "eval_run", run / "checkpoints" / "best.ckpt", overrides)
    with open_dict(cfg):
        cfg.corruptions = {"jpeg": [30]}
    evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    trained = json.loads((run / "test_results.json").read_text())
    again = json.loads((out / "test_results.json").read_text())
    for name in ("grouped", "plain"):  # the same images, weights and calibration: the same numbers
        assert again["per_source"][name]["auroc"]["value"] == pytest.approx(
            trained["per_source"][name]["auroc"]["value"]
        )
    assert Counter(read_predictions_csv(out / "predictions.csv")["source"]) == {"grouped": 8, "plain": 4}
    rows = json.loads((out / "robustness.json").read_text())["results"]
    assert [(r["corruption"], r["n"]) for r in rows] == [("clean", 12), ("jpeg", 12)]
    assert (out / "explanations.png").is_file()


def test_lodo_sources_are_the_single_set_experiments_data(compose_cfg) -> None:
    """Each +experiment=lodo source splits, re-encodes and self-blends as its own +experiment=SET does, so its
    held-out cell compares with the cross-dataset matrix."""
    lodo = source_nodes(compose_cfg("train", ["+experiment=lodo", "data.held_out=dfdc_faces"]).data)
    keys = ("root", "group_by", "reencode_jpeg_quality", "split_seed", "split_ratios", "self_blend")
    default = {k: p.default for k, p in inspect.signature(DeepfakeDataModule).parameters.items()}
    for name in LODO_SETS:
        alone = OmegaConf.to_container(compose_cfg("train", [f"+experiment={name}"]).data, resolve=True)
        mine = {k: lodo[name].get(k, default[k]) for k in keys}  # a key not set: the module's default
        mine["split_ratios"] = list(mine["split_ratios"])
        assert mine == {k: alone[k] for k in keys}, name


def test_lodo_composes_and_a_tiny_run_scores_the_held_out_set(compose_cfg, tmp_path: Path) -> None:
    if not all((SHARED / name / "real").is_dir() for name in LODO_SETS):
        pytest.skip(
            f"the shared sets {LODO_SETS} are not all in {SHARED} (they live in ../shared beside the repo)"
        )
    overrides = [
        "+experiment=lodo",
        "debug=fdr",
        "data.held_out=lfw_faceswap",
        "+data.max_per_class=40",  # whole source videos for dfdc_faces: 40 groups, enough for 20 folds
        "data.batch_size=32",  # fast_dev_run scores one batch: all 24 test images
        "data.image_size=32",
        "model.backbone.weights=null",
        "model.backbone.freeze_first_n=0",
    ]
    cfg = compose_cfg("train", overrides)
    assert list(cfg.data.sources) == list(LODO_SETS) and cfg.data.held_out == "lfw_faceswap"
    train(cfg)
    run = Path(cfg.paths.output_dir)
    per_source = json.loads((run / "test_results.json").read_text())["per_source"]
    assert {name: m["n"] for name, m in per_source.items()} == {name: 8 for name in LODO_SETS}
    splits = _rows(run / "splits.csv")
    assert {r["split"] for r in splits if r["source"] == "lfw_faceswap"} == {"test"}
    failed = tmp_path / "failed_job"  # a multirun job that failed is listed, not tabulated
    failed.mkdir()
    (failed / "error.json").write_text('{"status": "failed"}')
    with pytest.raises(SystemExit, match="out=DIR RUN_OR_SWEEP_DIR"):  # no out=: the usage
        lodo.main([str(run)])
    # python -m deepfake_lightning.sweeps.lodo out=DIR RUN FAILED_JOB
    lodo.main([f"out={tmp_path / 'table'}", str(run), str(failed)])
    table = json.loads((tmp_path / "table" / "lodo.json").read_text())
    assert table["failed"] == [str(failed)] and len(table["rows"]) == 1
    row = table["rows"][0]
    assert row["name"] == "multi: ffhq_stylegan+dfdc_faces" and row["held_out"] == ["lfw_faceswap"]
    assert row["auroc"]["lfw_faceswap"] == per_source["lfw_faceswap"]["auroc"]
    assert (
        "| lfw_faceswap | multi: ffhq_stylegan+dfdc_faces |" in (tmp_path / "table" / "lodo.md").read_text()
    )
