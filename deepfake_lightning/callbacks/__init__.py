"""Lightning callbacks that write human-readable run files."""

from deepfake_lightning.callbacks.run_files import RunFilesCallback
from deepfake_lightning.callbacks.skipped_images import SkippedImagesCallback

__all__ = ["RunFilesCallback", "SkippedImagesCallback"]
