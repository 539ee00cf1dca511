"""Lightning callbacks: human-readable run files, resumable best-checkpoint bookkeeping, per-epoch seeding."""

from deepfake_lightning.callbacks.epoch_seed import EpochSeedCallback
from deepfake_lightning.callbacks.resumable_checkpoint import ResumableModelCheckpoint
from deepfake_lightning.callbacks.run_files import RunFilesCallback
from deepfake_lightning.callbacks.skipped_images import SkippedImagesCallback

__all__ = ["EpochSeedCallback", "ResumableModelCheckpoint", "RunFilesCallback", "SkippedImagesCallback"]
