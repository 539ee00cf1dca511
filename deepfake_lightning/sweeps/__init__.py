"""Multirun bookkeeping: reading job dirs, the per-sweep summary, and the Hydra callback that writes it."""

from deepfake_lightning.sweeps.callback import SweepSummaryCallback
from deepfake_lightning.sweeps.runs import JobRecord, find_job_dirs, load_history, read_job
from deepfake_lightning.sweeps.summary import summarize_sweep, write_sweep_summary

__all__ = [
    "JobRecord",
    "SweepSummaryCallback",
    "find_job_dirs",
    "load_history",
    "read_job",
    "summarize_sweep",
    "write_sweep_summary",
]
