"""The built-in dataset: generated once under the data dir, then read like faces140k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_lightning.data.datamodule import DeepfakeDataModule


class SyntheticDataModule(DeepfakeDataModule):
    """Writes the procedural real/fake set (see `deepfake_lightning.data.synthetic`) in `prepare_data`."""

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
        from deepfake_lightning.data.synthetic import generate_synthetic_dataset

        generate_synthetic_dataset(self.out_dir, **self.generator_args)

    def setup(self, stage: str | None = None) -> None:
        if self.index is None and not Path(self.root).is_dir():
            self.prepare_data()
        super().setup(stage)
