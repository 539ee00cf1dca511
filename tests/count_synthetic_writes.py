"""Run an entry point counting the synthetic images this process writes (for the DDP generate-once test).

python tests/count_synthetic_writes.py COUNT_FILE deepfake_lightning.train [overrides...]
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path

import deepfake_lightning.data.synthetic as synthetic

count_file, module = Path(sys.argv[1]), sys.argv[2]
sys.argv = [sys.argv[0], *sys.argv[3:]]
written = [0]
original = synthetic._write_one


def _counted(task: tuple) -> None:
    written[0] += 1
    original(task)


synthetic._write_one = _counted  # generator_workers=1: every image is written in this process
atexit.register(lambda: count_file.write_text(str(written[0])))
runpy.run_module(module, run_name="__main__", alter_sys=True)
