"""Multi-process training helpers: rank checks, gathering test predictions, Hydra-aware DDP launching."""

from deepfake_lightning.distributed.hydra_ddp import HydraDDPStrategy
from deepfake_lightning.distributed.ranks import gather_test_outputs, is_rank_zero

__all__ = ["HydraDDPStrategy", "gather_test_outputs", "is_rank_zero"]
