"""deepfake_lightning: train, evaluate and ship deepfake face-image detectors (PyTorch Lightning + Hydra)."""

# The configs' own OmegaConf resolvers (${dfl_cwd:}, ${dfl_slurm_gpus:...}): registered whenever the package is
# imported, so any composition of conf/ resolves them, entry points and tests alike.
from deepfake_lightning.utils import resolvers as _resolvers  # noqa: F401
