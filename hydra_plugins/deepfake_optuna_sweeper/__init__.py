"""A Hydra sweeper over current Optuna (hydra-optuna-sweeper pins optuna<3 and breaks on SQLAlchemy 2).

``hydra/sweeper=deepfake_optuna``: seeded sampler, a study in a journal file (or any Optuna storage URL) inside
the sweep dir, and resume: re-running the same command runs only the trials still missing from ``n_trials``.
"""
