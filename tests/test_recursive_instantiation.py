"""`hydra.utils.instantiate(cfg.model)`, recursive as lightning-hydra-template's train.py writes it, gives a
working `DetectorModule`; checkpoints keep plain-dict hyperparameters, so old and new ones load alike."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from deepfake_lightning.bundle import open_model
from deepfake_lightning.modules import DetectorModule
from deepfake_lightning.utils.config_schema import ConfigError

SIZE = 32
PREPROCESSING = {
    "image_size": SIZE,
    "preprocess": "resize",
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "reencode_jpeg_quality": None,
}


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    items = [
        {"image": torch.randn(3, SIZE, SIZE, generator=generator), "target": float(i % 2), "path": f"{i}.png"}
        for i in range(8)
    ]
    return DataLoader(items, batch_size=4)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    theirs = b.state_dict()
    return all(torch.equal(value, theirs[name]) for name, value in a.state_dict().items())


def test_recursive_instantiate_of_advanced_v2_trains_and_checkpoints(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("train", ["+experiment=advanced_v2", "model.backbone.weights=null"])
    module = instantiate(cfg.model)  # recursive: optimizer and scheduler arrive as functools.partial
    assert isinstance(module, DetectorModule)
    assert module.hparams.optimizer == {
        "_target_": "torch.optim.adamw.AdamW",
        "_partial_": True,
        "lr": 0.0005,
        "weight_decay": 0.0001,
    }
    assert module.hparams.scheduler["_target_"] == "deepfake_lightning.modules.schedulers.reduce_on_plateau"
    trainer = L.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader())
    [optimizer] = trainer.optimizers
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["weight_decay"] == 0.0001
    [scheduler] = trainer.lr_scheduler_configs
    assert isinstance(scheduler.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    ckpt = tmp_path / "recursive.ckpt"
    trainer.save_checkpoint(ckpt)
    restored = DetectorModule.load_from_checkpoint(ckpt)  # no arguments: the hyperparameters are plain dicts
    assert restored.hparams.optimizer == module.hparams.optimizer and _same_weights(restored, module)
    assert _same_weights(open_model(ckpt).module, module)


def test_a_partial_that_cannot_be_stored_is_refused() -> None:
    with pytest.raises(ConfigError, match="model.optimizer=.*positional arguments cannot be stored"):
        DetectorModule(optimizer=functools.partial(torch.optim.SGD, [], 0.1))

    def local_factory(optimizer: torch.optim.Optimizer, total_steps: int) -> None: ...

    with pytest.raises(ConfigError, match="model.scheduler=.*cannot be imported by that name"):
        DetectorModule(scheduler=functools.partial(local_factory))


def test_a_checkpoint_in_the_earlier_plain_dict_form_still_opens(tmp_path: Path) -> None:
    """Hyperparameters as train.py stored them before recursive instantiation was accepted (the config dicts,
    `torch.optim.AdamW` as written in conf/) and before `nonfinite_loss` existed."""
    hparams = {
        "backbone": {"name": "mobilenet_v2", "weights": None, "sha256": None, "freeze_first_n": 0},
        "attention": {"enabled": True, "hidden": 16},
        "head": {"hidden": [8], "dropout": [0.1, 0.1]},
        "loss": {"name": "bce"},
        "optimizer": {
            "_target_": "torch.optim.AdamW",
            "_partial_": True,
            "lr": 0.001,
            "weight_decay": 0.0001,
        },
        "scheduler": {
            "_target_": "deepfake_lightning.modules.schedulers.cosine_with_warmup",
            "_partial_": True,
            "warmup_ratio": 0.05,
            "min_lr_ratio": 0.01,
        },
        "threshold": 0.4,
        "preprocessing": PREPROCESSING,
    }
    torch.manual_seed(0)
    weights = DetectorModule(**hparams).state_dict()
    ckpt = tmp_path / "earlier.ckpt"
    written_by = {"pytorch-lightning_version": "2.1.0", "epoch": 3, "global_step": 40}  # an older Lightning
    torch.save({"state_dict": weights, "hyper_parameters": hparams, **written_by}, ckpt)

    restored = DetectorModule.load_from_checkpoint(ckpt)
    assert restored.hparams.optimizer == hparams["optimizer"] and restored.hparams.nonfinite_loss == "stop"
    model = open_model(ckpt)
    assert all(torch.equal(value, weights[name]) for name, value in model.module.state_dict().items())
    assert (model.temperature, model.threshold, model.threshold_rule) == (1.0, 0.4, "fixed")
    assert model.preprocessing == PREPROCESSING and model.bundle.attention is True
