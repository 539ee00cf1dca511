"""The errors of the model door: each message names the file and the reason, so a CLI prints one line."""

from __future__ import annotations


class BundleError(ValueError):
    """A model, bundle or calibration file that cannot be used."""


class CheckpointError(BundleError):
    """A checkpoint that cannot be read or rebuilt (damaged, foreign, a code-running pickle, another network)."""
