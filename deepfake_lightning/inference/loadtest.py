"""Moved: the load test is a measuring tool and lives in `deepfake_lightning.bench.loadtest` (issue 20 §2).

This file only keeps the old command `python -m deepfake_lightning.inference.loadtest ...` running; it holds no
code of its own (tests/test_prediction_layout.py checks that).
"""

if __name__ == "__main__":
    import runpy

    runpy.run_module("deepfake_lightning.bench.loadtest", run_name="__main__", alter_sys=True)
