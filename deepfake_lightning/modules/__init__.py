"""Lightning modules: training logic around the plain models."""

from deepfake_lightning.modules.detector_module import DetectorModule

__all__ = ["DetectorModule"]
