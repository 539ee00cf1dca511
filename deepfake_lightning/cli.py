"""Console scripts for the verbs whose ``main`` returns what it wrote (tests use it): a console script exits
with ``main()``'s return value, so these return nothing instead. The Hydra verbs (``dfl-train``, ``dfl-eval``,
...) point at their ``main`` directly: ``pyproject.toml`` [project.scripts] lists them all.

Each verb imports its module when it runs (lazy imports below): at the top, every verb would import all three,
and `bench.loadtest` alone pulls in torch (19.8 s to import here, -X importtime, load 15).
"""

from __future__ import annotations


def compare() -> None:
    """``dfl-compare`` = ``python -m deepfake_lightning.compare``."""
    from deepfake_lightning.compare import main

    main()


def ablation() -> None:
    """``dfl-ablation`` = ``python -m deepfake_lightning.sweeps.ablation``."""
    from deepfake_lightning.sweeps.ablation import main

    main()


def loadtest() -> None:
    """``dfl-loadtest`` = ``python -m deepfake_lightning.bench.loadtest``."""
    from deepfake_lightning.bench.loadtest import main

    main()
