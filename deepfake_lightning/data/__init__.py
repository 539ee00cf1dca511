"""Data: layouts, decoding, transforms and the LightningDataModules."""

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.images import BadImageError, load_rgb
from deepfake_lightning.data.index import DatasetLayoutError
from deepfake_lightning.data.multi_datamodule import MultiSourceDataModule
from deepfake_lightning.data.synthetic_datamodule import SyntheticDataModule

__all__ = [
    "BadImageError",
    "DatasetLayoutError",
    "DeepfakeDataModule",
    "MultiSourceDataModule",
    "SyntheticDataModule",
    "load_rgb",
]
