"""Plain `nn.Module`s: no training logic lives here."""

from deepfake_lightning.models.attention import SpatialAttention
from deepfake_lightning.models.backbone import MobileNetV2Backbone, WeightsError
from deepfake_lightning.models.backbones import build_backbone
from deepfake_lightning.models.detector import DeepfakeDetector, build_detector, model_size
from deepfake_lightning.models.feature_backbone import FeatureBackbone
from deepfake_lightning.models.head import MLPHead

__all__ = [
    "DeepfakeDetector",
    "FeatureBackbone",
    "MLPHead",
    "MobileNetV2Backbone",
    "SpatialAttention",
    "WeightsError",
    "build_backbone",
    "build_detector",
    "model_size",
]
