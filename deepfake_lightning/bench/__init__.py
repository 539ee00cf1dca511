"""`python -m deepfake_lightning.bench`: measured speed of the input pipeline, training and inference.

One module per task (`data`, `index`, `train`, `inference`), `rows` for the shared row format and timing,
`report` for bench.json / bench.md, `run` for the orchestration the Hydra entry point calls.
"""

from deepfake_lightning.bench.rows import ROW_FIELDS, Row

__all__ = ["ROW_FIELDS", "Row"]
