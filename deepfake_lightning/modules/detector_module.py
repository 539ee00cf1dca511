"""LightningModule: loss, optimisation and per-stage metrics around the plain `DeepfakeDetector`."""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MeanMetric

from deepfake_lightning.models import build_detector, model_size
from deepfake_lightning.models.backbones import weights_provenance
from deepfake_lightning.models.cached_forward import CachePoint, cache_point, trainable_forward
from deepfake_lightning.modules.losses import BinaryLoss
from deepfake_lightning.modules.partials import partial_config
from deepfake_lightning.modules.stage_metrics import logged_name, stage_confusion, stage_metrics
from deepfake_lightning.utils.config_schema import ModelSettings

log = logging.getLogger(__name__)
STAGES = ("train", "val", "test")
OK, SKIP, STOP = 0, 1, 2  # status of a training step, ordered so that the worst over DDP ranks wins
DEFAULT_PREPROCESSING = {
    "image_size": 224,
    "preprocess": "resize",
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "reencode_jpeg_quality": None,
}
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 1e-4}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf and `model.nonfinite_loss=stop`; the message names step and files."""


def _inputs(batch: dict[str, Any]) -> torch.Tensor:
    """The batch's images, or its cached features."""
    return batch["features"] if "features" in batch else batch["image"]


def _plain(value: Any) -> Any:
    return (
        OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else copy.deepcopy(value)
    )


class DetectorModule(L.LightningModule):
    """All hyperparameters are stored as plain dicts, so checkpoints load with `weights_only=True` and no
    arguments. `optimizer` and `scheduler` may also come as the `functools.partial` a recursive
    `hydra.utils.instantiate(cfg.model)` makes of their `_partial_` configs (`partials.py`).

    They are checked against `ModelSettings`, the schema the start-up check applies to `model.*`.
    """

    config_schema = ModelSettings

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        attention: dict[str, Any] | None = None,
        head: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | functools.partial | None = None,
        scheduler: dict[str, Any] | functools.partial | None = None,
        threshold: float = 0.5,
        preprocessing: dict[str, Any] | None = None,
        nonfinite_loss: str = "stop",
        pretrained: dict[str, Any] | None = None,
    ) -> None:
        """`pretrained` records where the backbone's starting weights came from; training fills it from
        `backbone.weights` (`models.backbones.weights_provenance`) and a loaded checkpoint carries it on."""
        super().__init__()
        optimizer = partial_config(optimizer, "model.optimizer")
        scheduler = partial_config(scheduler, "model.scheduler")
        ModelSettings.check(
            {
                "backbone": backbone,
                "attention": attention,
                "head": head,
                "loss": loss,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "threshold": threshold,
                "preprocessing": preprocessing,
                "nonfinite_loss": nonfinite_loss,
                "pretrained": pretrained,
            }
        )
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
        config["pretrained"] = _plain(pretrained) or weights_provenance(config["backbone"])
        self.save_hyperparameters(config)
        self.net = build_detector(
            config["backbone"],
            config["attention"],
            config["head"],
            image_size=config["preprocessing"].get("image_size"),
        )
        self.loss_fn = BinaryLoss(**config["loss"])
        # keys are "<stage>_" because ModuleDict refuses names such as "train" that shadow Module methods
        # Lightning-logged metrics are at an uncalibrated 0.5 and named so (stage_metrics); `threshold` is the
        # stored operating point used when no calibration is fitted (calibrate_run.uncalibrated)
        self.metrics = torch.nn.ModuleDict({f"{stage}_": stage_metrics() for stage in STAGES})
        self.confusion = torch.nn.ModuleDict({f"{stage}_": stage_confusion() for stage in STAGES})
        self.mean_loss = torch.nn.ModuleDict({f"{stage}_": MeanMetric() for stage in ("val", "test")})
        self._step_has_update = False  # a kept (not skipped) batch since the last optimizer step
        self.last_confusion: dict[str, list[list[int]]] = {}
        self.test_outputs: dict[str, list] = {}
        self.nonfinite_skipped = 0  # training batches skipped for a NaN/inf loss (nonfinite_loss=skip)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def size(self) -> dict[str, float | int]:
        return model_size(self.net)

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(loss, logits), or None when every image of the batch was unreadable and skipped.

        A batch of cached frozen features (`feature_cache.enabled`, data/cached_features.py) runs only the
        trainable rest of the network; images run all of it."""
        targets = batch["target"]
        if _inputs(batch).numel() == 0:
            return None
        if "features" in batch:
            logits = trainable_forward(self.net, self._cache_point(), batch["features"])
        else:
            logits = self(batch["image"])
        return self.loss_fn(logits, targets), logits

    def _cache_point(self) -> CachePoint:
        point = cache_point(self.net)
        if point is None:
            raise ValueError("a batch of cached features, but model.backbone.tune has no frozen part")
        return point

    def _record(self, stage: str, batch: dict[str, Any], loss: torch.Tensor, logits: torch.Tensor) -> None:
        probs = torch.sigmoid(logits.detach().float())
        target_int = batch["target"].long()
        self.metrics[f"{stage}_"].update(probs, target_int)
        self.confusion[f"{stage}_"].update(probs, target_int)
        if stage == "train":  # per step, from this rank alone: no collective
            self.log(
                "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target_int)
            )
        else:  # val/test loss is logged at epoch end with the other metrics, by every rank at once (_epoch_end)
            self.mean_loss[f"{stage}_"].update(loss.detach().float(), weight=len(target_int))

    def _step(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        out = self._loss(batch)
        if out is not None:
            self._record(stage, batch, *out)
        return out

    def _join_sync_batchnorm(self) -> None:
        """SyncBatchNorm (``trainer=ddp``: ``sync_batchnorm``) gathers batch statistics during the forward pass, so
        a rank without images must still run one, on an empty batch (torch's SyncBatchNorm accepts it for exactly
        this), or the other ranks wait in it forever. Plain BatchNorm would average an empty batch into NaN
        running statistics, so nothing runs without SyncBatchNorm."""
        if self._world_size() > 1 and any(isinstance(m, torch.nn.SyncBatchNorm) for m in self.modules()):
            size = int(
                (self.hparams.preprocessing or {}).get("image_size", DEFAULT_PREPROCESSING["image_size"])
            )
            self(torch.zeros(0, 3, size, size, device=self.device))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if _inputs(batch).numel() == 0:
            self._join_sync_batchnorm()
        out = self._loss(batch)
        status = OK if out is not None and torch.isfinite(out[0]) else SKIP
        if out is not None and status == SKIP and self.hparams.nonfinite_loss == "stop":
            status = STOP
        worst = self._worst_over_ranks(status)
        if worst == STOP:  # every rank raises, so no rank is left waiting in a collective
            if status == STOP:
                assert out is not None
                raise NonFiniteLossError(self._nonfinite_message(out[0], batch))
            raise NonFiniteLossError(
                f"training stopped at global step {self.global_step}: another DDP rank had a non-finite loss "
                "(its log names the files); set model.nonfinite_loss=skip to skip such batches"
            )
        if out is not None and status == SKIP:
            self._count_nonfinite(out[0], batch)
        if worst == OK:
            assert out is not None
            self._step_has_update = True
            self._record("train", batch, *out)
            return out[0]
        if self._world_size() == 1:
            return None  # Lightning skips backward and the optimizer step
        # DDP: a rank that skipped backward would leave the others waiting in the gradient all-reduce, so every
        # rank skips this step together: each backpropagates a zero through every trainable parameter (the
        # all-reduce runs), then on_before_optimizer_step drops those gradients (no optimizer step at all)
        if status == OK:
            log.warning(
                "skipped the batch at global step %d: another DDP rank skipped its batch", self.global_step
            )
        return (
            sum((p.sum() for p in self.parameters() if p.requires_grad), torch.zeros((), device=self.device))
            * 0.0
        )

    def _world_size(self) -> int:
        trainer = self._trainer
        return int(trainer.world_size) if trainer is not None else 1

    def _worst_over_ranks(self, status: int) -> int:
        """The worst status of any rank (OK < SKIP < STOP): one all-reduce per training step under DDP only."""
        if self._world_size() == 1:
            return status
        flags = torch.zeros(3, device=self.device)
        flags[status] = 1.0
        flags = self.trainer.strategy.reduce(flags, reduce_op="sum")
        return max(i for i in range(3) if flags[i] > 0)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """No batch of this step was kept on any rank (DDP skip): without gradients the optimizer changes nothing
        (AdamW leaves its moments, step count and weight decay alone), exactly as a skipped single-device step."""
        if not self._step_has_update:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
        self._step_has_update = False

    def _nonfinite_message(self, loss: torch.Tensor, batch: dict[str, Any]) -> str:
        paths = list(batch.get("path", []))
        shown = f"{paths[:8]}{' ...' if len(paths) > 8 else ''}"
        return (
            f"training loss is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}); "
            f"batch of {len(paths)} image(s): {shown}. "
            "Set model.nonfinite_loss=skip to skip such batches, or lower model.optimizer.lr"
        )

    def _count_nonfinite(self, loss: torch.Tensor, batch: dict[str, Any]) -> None:
        """`nonfinite_loss=skip`: a NaN/inf loss would poison every weight at the next step, so the batch is dropped."""
        self.nonfinite_skipped += 1
        paths = list(batch.get("path", []))
        log.warning(
            "skipped the batch at global step %d (epoch %d): training loss is %s (%d such batch(es) so far): %s",
            self.global_step,
            self.current_epoch,
            loss.item(),
            self.nonfinite_skipped,
            f"{paths[:8]}{' ...' if len(paths) > 8 else ''}",
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

    def _scored_over_ranks(self, stage: str) -> int:
        """Batches scored in this epoch by all ranks together (one all-reduce under DDP)."""
        count = int(self.confusion[f"{stage}_"].update_count)
        if self._world_size() == 1:
            return count
        total = self.trainer.strategy.reduce(torch.tensor(float(count), device=self.device), reduce_op="sum")
        return int(total.item())

    def _typed_empty_states(self, stage: str) -> None:
        """torchmetrics gathers the list states (the scores and labels behind AUROC, AP, EER) of every rank; on a
        rank that scored nothing it stands in an empty float32 tensor for each, also for the int64 labels, and a
        gather of mismatched dtypes fails. Empty tensors of the dtypes the other ranks hold instead."""
        for metric in self.metrics[f"{stage}_"].values(copy_state=False):
            for name, value in metric.metric_state.items():
                if isinstance(value, list) and not value:
                    dtype = torch.long if name == "target" else torch.float32
                    setattr(metric, name, [torch.zeros(0, dtype=dtype, device=self.device)])

    def _epoch_end(self, stage: str) -> None:
        # Under DDP every rank takes the same branch (the metrics sync and log_dict are collectives), also when
        # this rank scored nothing: torchmetrics then adds an empty state to the gather
        if self._scored_over_ranks(stage) == 0:  # every batch skipped (unreadable, non-finite loss)
            log.warning(
                "no %s batch was scored in epoch %d: no %s metrics for it", stage, self.current_epoch, stage
            )
            return
        if self._world_size() > 1 and int(self.confusion[f"{stage}_"].update_count) == 0:
            self._typed_empty_states(stage)
        with warnings.catch_warnings():  # "compute before update" on a rank whose shard was all skipped
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
            computed = {
                f"{stage}/{logged_name(name)}": value
                for name, value in self.metrics[f"{stage}_"].compute().items()
            }
            if stage != "train":
                computed[f"{stage}/loss"] = self.mean_loss[f"{stage}_"].compute()
            self.last_confusion[stage] = self.confusion[f"{stage}_"].compute().int().tolist()
        self.log_dict(computed, prog_bar=stage == "val", sync_dist=True)
        self.metrics[f"{stage}_"].reset()
        self.confusion[f"{stage}_"].reset()
        if stage != "train":
            self.mean_loss[f"{stage}_"].reset()

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
