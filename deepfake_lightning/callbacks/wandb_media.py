"""What W&B gets beyond Lightning's scalar metrics: confusion matrices, ROC/PR, sample predictions and the
best checkpoint as a model artifact. Does nothing when the trainer has no WandbLogger."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from deepfake_lightning.distributed import gather_test_outputs
from deepfake_lightning.evaluation.metrics import operating_points
from deepfake_lightning.evaluation.plots import plot_confusion_matrix, plot_pr, plot_roc

CLASS_NAMES = ["real", "fake"]


def _wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def _png(draw: Callable[[Path], Any]) -> Image.Image:
    """Runs one of our PNG writers into a temp file and returns the image (W&B copies it into the run)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        with Image.open(path) as image:
            return image.convert("RGB")


def pick_samples(labels: np.ndarray, p_fake: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` indices, half per class, evenly spread over each class's score range (sure right ... sure
    wrong), so the grid shows typical and failing cases rather than the first files."""
    picked: list[int] = []
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        if idx.size == 0:
            continue
        ordered = idx[np.argsort(p_fake[idx])]
        take = min(max(n // 2, 1), ordered.size)
        picked += ordered[np.linspace(0, ordered.size - 1, take).round().astype(int)].tolist()
    return picked


def sample_grid(paths: list[str], labels: np.ndarray, p_fake: np.ndarray, threshold: float) -> Image.Image:
    """A grid of test images titled with the true class and p(fake); green = correct, red = wrong."""
    cols = min(8, max(len(paths), 1))
    rows = max(1, -(-len(paths) // cols))
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows), dpi=100)
    canvas = FigureCanvasAgg(fig)
    for k, (path, label, p) in enumerate(zip(paths, labels, p_fake, strict=True)):
        ax = fig.add_subplot(rows, cols, k + 1)
        try:
            with Image.open(path) as image:
                ax.imshow(image.convert("RGB"))
        except OSError:
            ax.text(0.5, 0.5, "unreadable", ha="center")
        correct = int(p >= threshold) == int(label)
        ax.set_title(f"{CLASS_NAMES[int(label)]} p={p:.2f}", fontsize=8, color="green" if correct else "red")
        ax.axis("off")
    fig.tight_layout()
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


class WandbMediaCallback(L.Callback):
    def __init__(self, n_samples: int = 16, log_checkpoint: bool = True) -> None:
        self.n_samples = n_samples
        self.log_checkpoint = log_checkpoint

    def _log(self, trainer: L.Trainer, payload: dict[str, Any]) -> None:
        logger = _wandb_logger(trainer)
        if logger is not None:
            logger.experiment.log({**payload, "trainer/global_step": trainer.global_step})

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation has run by now, so `last_confusion["val"]` is this epoch's
        # lazy: wandb costs 4.4 s to import here (-X importtime after torch, load 15); only logger=wandb needs it
        import wandb

        confusion = getattr(pl_module, "last_confusion", {}).get("val")
        if confusion is None or _wandb_logger(trainer) is None:
            return
        title = f"validation, epoch {trainer.current_epoch}"
        image = _png(lambda path: plot_confusion_matrix(confusion, path, title))
        (tn, fp), (fn, tp) = confusion
        self._log(
            trainer,
            {
                "val/confusion_matrix": wandb.Image(image, caption=title),
                "val/confusion_counts": wandb.Table(
                    columns=["tn", "fp", "fn", "tp"], data=[[tn, fp, fn, tp]]
                ),
                "epoch": trainer.current_epoch,
            },
        )

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # lazy: wandb costs 4.4 s to import here (-X importtime after torch, load 15); only logger=wandb needs it
        import wandb

        logger = _wandb_logger(trainer)
        checkpoint = trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") if checkpoint is not None else ""
        if not (self.log_checkpoint and logger is not None and best and Path(best).is_file()):
            return
        run = logger.experiment
        score = checkpoint.best_model_score
        metadata = {
            "monitor": checkpoint.monitor,
            "score": float(score) if score is not None else None,
            "epoch": trainer.current_epoch,
        }
        artifact = wandb.Artifact(name=f"model-{run.id}", type="model", metadata=metadata)
        artifact.add_file(best, name="best.ckpt")
        run.log_artifact(artifact, aliases=["best", "latest"])

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _wandb_logger(trainer) is None:
            return
        gather_test_outputs(pl_module)  # every rank (a collective under DDP); idempotent
        if trainer.is_global_zero:
            self._log_test_media(trainer, pl_module)

    def _log_test_media(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # lazy: wandb costs 4.4 s to import here (-X importtime after torch, load 15); only logger=wandb needs it
        import wandb

        outputs = getattr(pl_module, "test_outputs", None) or {}
        if not outputs.get("path"):
            return
        labels = torch.cat(outputs["target"]).numpy().astype(int).reshape(-1)
        p_fake = torch.sigmoid(torch.cat(outputs["logit"]).double()).numpy().reshape(-1)
        threshold = float(pl_module.hparams.get("threshold", 0.5))
        preds = (p_fake >= threshold).astype(int)
        ops = operating_points(p_fake, labels)
        roc = wandb.Table(columns=["fpr", "tpr"], data=np.column_stack([ops.fpr, ops.tpr]).tolist())
        pr = wandb.Table(
            columns=["recall", "precision"], data=np.column_stack([ops.tpr, ops.precision]).tolist()
        )
        picked = pick_samples(labels, p_fake, self.n_samples)
        paths = [outputs["path"][i] for i in picked]
        grid = sample_grid(paths, labels[picked], p_fake[picked], threshold)
        table = wandb.Table(columns=["image", "label", "p_fake", "correct"])
        for i, path in zip(picked, paths, strict=True):
            table.add_data(
                wandb.Image(path), CLASS_NAMES[labels[i]], float(p_fake[i]), bool(preds[i] == labels[i])
            )
        self._log(
            trainer,
            {
                "test/roc": wandb.plot.line(roc, "fpr", "tpr", title="Test ROC (fake = positive)"),
                "test/pr": wandb.plot.line(pr, "recall", "precision", title="Test precision-recall"),
                "test/roc_image": wandb.Image(_png(lambda path: plot_roc(p_fake, labels, path))),
                "test/pr_image": wandb.Image(_png(lambda path: plot_pr(p_fake, labels, path))),
                "test/confusion_matrix": wandb.plot.confusion_matrix(
                    y_true=labels.tolist(), preds=preds.tolist(), class_names=CLASS_NAMES
                ),
                "test/sample_predictions": wandb.Image(
                    grid, caption=f"green = correct at p >= {threshold:g}"
                ),
                "test/predictions_table": table,
            },
        )
