"""ModelCheckpoint whose best score and best file survive a resume into another run dir (``ckpt_path=last``)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from deepfake_lightning.bundle import CheckpointError
from deepfake_lightning.distributed import is_rank_zero

log = logging.getLogger(__name__)


class ResumableModelCheckpoint(ModelCheckpoint):
    """Lightning restores ``best_model_score`` and the top-k bookkeeping only when the checkpoint was written to
    the same ``dirpath``; ``ckpt_path=last`` resumes into a new run dir, so best.ckpt, the score returned to
    sweepers and early stopping's reference would mean "best since the resume". Here the previous run's top-k
    files are copied into this run's dirpath and the bookkeeping restored with the paths remapped, so the final
    best equals that of an uninterrupted run.
    """

    @property
    def state_key(self) -> str:
        # Lightning's own key (the class name is part of it), so that checkpoints written by a plain
        # ModelCheckpoint, before this class existed, resume into it as well
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._fitting = (
            stage == "fit"
        )  # testing a checkpoint restores the callbacks too: nothing to carry then

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        previous = state_dict.get("dirpath")
        same_dir = (
            previous is None
            or self.dirpath is None
            or Path(previous).resolve() == Path(self.dirpath).resolve()
        )
        if same_dir or not getattr(self, "_fitting", False):
            super().load_state_dict(state_dict)
            return
        moved = {path: self._adopt(path, Path(previous)) for path in state_dict.get("best_k_models", {})}
        self.best_k_models = {
            moved[path]: score for path, score in state_dict.get("best_k_models", {}).items()
        }
        self.best_model_score = state_dict["best_model_score"]
        self.best_model_path = moved.get(state_dict["best_model_path"], state_dict["best_model_path"])
        self.kth_best_model_path = moved.get(state_dict.get("kth_best_model_path", ""), "")
        self.kth_value = state_dict.get("kth_value", self.kth_value)
        if self.best_model_path:
            log.info(
                "resumed the best checkpoint bookkeeping of %s: %s=%s, copied to %s",
                previous,
                self.monitor,
                None if self.best_model_score is None else float(self.best_model_score),
                self.best_model_path,
            )

    def _adopt(self, path: str, previous: Path) -> str:
        """Copy one top-k file of the previous run dir into this one (rank 0); its new path."""
        source = Path(path)
        if source.parent.resolve() != previous.resolve():
            return path  # not written by this callback into its dir: left where it is
        target = Path(str(self.dirpath)) / source.name
        if not source.is_file():
            raise CheckpointError(
                f"{source}: the best checkpoint of the run being resumed is missing, so this run could not keep "
                f"its best {self.monitor} and best.ckpt; restore the file, or start a new run"
            )
        if is_rank_zero():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        return str(target)
