"""The built-in dataset: generated once under the data dir, then read like faces140k."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from deepfake_lightning.data.datamodule import DeepfakeDataModule
from deepfake_lightning.data.synthetic import META_NAME, generate_synthetic_dataset, is_generated
from deepfake_lightning.utils.config_schema import SyntheticDataSettings

log = logging.getLogger(__name__)
# ranks other than local rank 0 wait this long for the set (the full 256-px set takes ~40 min on two cores)
WAIT_FOR_GENERATION_S = 3 * 3600.0
GENERATION_LOCK = ".generate.lock"  # in out_dir: one generator at a time across processes and jobs


def _local_rank() -> int:
    """This process's rank on its node, as launchers set it (Lightning's DDP launcher, torchrun, SLURM)."""
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class SyntheticDataModule(DeepfakeDataModule):
    """Writes the procedural real/fake set (see `deepfake_lightning.data.synthetic`) in `prepare_data`."""

    config_schema = SyntheticDataSettings

    def __init__(
        self,
        out_dir: str,
        n_train: int = 1000,
        n_valid: int = 200,
        n_test: int = 200,
        generated_size: int = 64,
        seed: int = 0,
        generator_workers: int = 1,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("layout", "faces140k")
        SyntheticDataSettings.check(
            {
                "out_dir": out_dir,
                "n_train": n_train,
                "n_valid": n_valid,
                "n_test": n_test,
                "generated_size": generated_size,
                "seed": seed,
                "generator_workers": generator_workers,
                **kwargs,
            }
        )
        super().__init__(root=str(Path(out_dir) / "real_vs_fake" / "real-vs-fake"), **kwargs)
        self.out_dir = out_dir
        self.generator_args = {
            "n_train": n_train,
            "n_valid": n_valid,
            "n_test": n_test,
            "image_size": generated_size,
            "seed": seed,
            "workers": generator_workers,
        }

    def prepare_data(self) -> None:
        """Generates the set, or reuses a complete one, under a lock file in ``out_dir``: separate jobs of one
        multirun (SLURM jobs, Optuna workers in several shells) start together on the same data dir, and two
        generators there would delete each other's files. The second one waits, then reuses the finished set."""
        Path(self.out_dir).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(self.out_dir) / GENERATION_LOCK)):
            generate_synthetic_dataset(self.out_dir, **self.generator_args)

    def setup(self, stage: str | None = None) -> None:
        if self.index is None:
            self._generate_once()
        super().setup(stage)

    def _generate_once(self, timeout_s: float = WAIT_FOR_GENERATION_S) -> None:
        """Local rank 0 generates (or reuses a complete set with the same parameters); the other ranks wait for it.

        Lightning runs ``prepare_data`` on local rank 0 behind a barrier, but train and eval read the data before
        the Trainer starts (image counts, calibration), and ranks started by SLURM or torchrun get there at the
        same moment: two generators writing one directory would delete each other's files.
        """
        if _local_rank() == 0:
            self.prepare_data()
            return
        params = {k: v for k, v in self.generator_args.items() if k != "workers"}
        if is_generated(self.out_dir, **params):
            return
        log.info(
            "local rank %d: waiting for local rank 0 to generate the synthetic set in %s",
            _local_rank(),
            self.out_dir,
        )
        deadline = time.monotonic() + timeout_s
        while not is_generated(self.out_dir, **params):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"local rank {_local_rank()}: the synthetic set in {self.out_dir} was not complete after "
                    f"{timeout_s:.0f} s ({META_NAME} with these parameters never appeared); is local rank 0 running?"
                )
            time.sleep(1.0)
