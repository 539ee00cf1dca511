"""Logger factories that fill in what Hydra knows (experiment, sweep, job) before the logger starts."""

from deepfake_lightning.loggers.wandb_logger import wandb_logger, wandb_run_names

__all__ = ["wandb_logger", "wandb_run_names"]
