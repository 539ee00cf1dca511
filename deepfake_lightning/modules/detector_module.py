"""LightningModule: loss, optimisation and per-stage metrics around the plain `DeepfakeDetector`."""

from __future__ import annotations

import copy
import logging
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics.classification import BinaryConfusionMatrix

from deepfake_lightning.models import build_detector, model_size
from deepfake_lightning.modules.losses import BinaryLoss
from deepfake_lightning.modules.stage_metrics import stage_metrics

log = logging.getLogger(__name__)
STAGES = ("train", "val", "test")
NONFINITE_LOSS = ("stop", "skip")
DEFAULT_PREPROCESSING = {
    "image_size": 224,
    "preprocess": "resize",
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "reencode_jpeg_quality": None,
}
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 1e-4}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf and `model.nonfinite_loss=stop`; the message names step and files."""


def _plain(value: Any) -> Any:
    return (
        OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else copy.deepcopy(value)
    )


class DetectorModule(L.LightningModule):
    """All constructor arguments are plain dicts, so checkpoints load with `weights_only=True` and no arguments."""

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        attention: dict[str, Any] | None = None,
        head: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        threshold: float = 0.5,
        preprocessing: dict[str, Any] | None = None,
        nonfinite_loss: str = "stop",
    ) -> None:
        super().__init__()
        if nonfinite_loss not in NONFINITE_LOSS:
            raise ValueError(f"model.nonfinite_loss={nonfinite_loss!r}: allowed {NONFINITE_LOSS}")
        config = {
            "backbone": _plain(backbone) or {},
            "attention": _plain(attention) or {},
            "head": _plain(head) or {},
            "loss": _plain(loss) or {},
            "optimizer": _plain(optimizer) or dict(DEFAULT_OPTIMIZER),
            "scheduler": _plain(scheduler),
            "threshold": float(threshold),
            "preprocessing": _plain(preprocessing) or dict(DEFAULT_PREPROCESSING),
            "nonfinite_loss": nonfinite_loss,
        }
        self.save_hyperparameters(config)
        self.net = build_detector(config["backbone"], config["attention"], config["head"])
        self.loss_fn = BinaryLoss(**config["loss"])
        # keys are "<stage>_" because ModuleDict refuses names such as "train" that shadow Module methods
        self.metrics = torch.nn.ModuleDict({f"{stage}_": stage_metrics(threshold) for stage in STAGES})
        self.confusion = torch.nn.ModuleDict(
            {f"{stage}_": BinaryConfusionMatrix(threshold=threshold) for stage in STAGES}
        )
        self.last_confusion: dict[str, list[list[int]]] = {}
        self.test_outputs: dict[str, list] = {}
        self.nonfinite_skipped = 0  # training batches skipped for a NaN/inf loss (nonfinite_loss=skip)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def size(self) -> dict[str, float | int]:
        return model_size(self.net)

    def _step(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        images, targets = batch["image"], batch["target"]
        if images.numel() == 0:  # every image of the batch was unreadable and skipped
            return None
        logits = self(images)
        loss = self.loss_fn(logits, targets)
        if stage == "train" and not torch.isfinite(loss):
            self._nonfinite(loss, batch)  # raises (stop) or returns: the batch is skipped
            return None
        probs = torch.sigmoid(logits.detach().float())
        target_int = targets.long()
        self.metrics[f"{stage}_"].update(probs, target_int)
        self.confusion[f"{stage}_"].update(probs, target_int)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=len(targets),
            sync_dist=stage != "train",
        )
        return loss, logits

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        out = self._step(batch, "train")
        return None if out is None else out[0]

    def _nonfinite(self, loss: torch.Tensor, batch: dict[str, Any]) -> None:
        """A NaN/inf loss would poison every weight at the next step: stop naming it, or skip the batch."""
        paths = list(batch.get("path", []))
        where = f"global step {self.global_step} (epoch {self.current_epoch})"
        shown = f"{paths[:8]}{' ...' if len(paths) > 8 else ''}"
        if self.hparams.nonfinite_loss == "stop":
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at {where}; batch of {len(paths)} image(s): {shown}. "
                "Set model.nonfinite_loss=skip to skip such batches, or lower model.optimizer.lr"
            )
        self.nonfinite_skipped += 1
        log.warning(
            "skipped the batch at %s: training loss is %s (%d such batch(es) so far): %s",
            where,
            loss.item(),
            self.nonfinite_skipped,
            shown,
        )
        self.log("train/nonfinite_skipped", float(self.nonfinite_skipped), on_step=True, on_epoch=False)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self._step(batch, "test")
        if out is not None:
            self.test_outputs["path"].extend(batch["path"])
            self.test_outputs["target"].append(batch["target"].long().cpu())
            self.test_outputs["logit"].append(out[1].detach().float().cpu())

    def on_test_epoch_start(self) -> None:
        self.test_outputs = {"path": [], "target": [], "logit": []}

    def _epoch_end(self, stage: str) -> None:
        if self.confusion[f"{stage}_"].update_count == 0:  # every batch skipped (unreadable, non-finite loss)
            log.warning(
                "no %s batch was scored in epoch %d: no %s metrics for it", stage, self.current_epoch, stage
            )
            return
        computed = self.metrics[f"{stage}_"].compute()
        self.log_dict(
            {f"{stage}/{name}": value for name, value in computed.items()},
            prog_bar=stage == "val",
            sync_dist=True,
        )
        self.last_confusion[stage] = self.confusion[f"{stage}_"].compute().int().tolist()
        self.metrics[f"{stage}_"].reset()
        self.confusion[f"{stage}_"].reset()

    def on_train_epoch_end(self) -> None:
        self._epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=params)
        if not self.hparams.scheduler:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The trained weights are in the state_dict: loading must not fetch pretrained weights again."""
        hparams = copy.deepcopy(dict(checkpoint["hyper_parameters"]))
        hparams["backbone"] = {**hparams["backbone"], "weights": None, "sha256": None}
        checkpoint["hyper_parameters"] = hparams
