#!/usr/bin/env bash
# Face detection figures of issue 19 §4: counts, not timings, so any machine gives the same numbers.
#   bash experiments/face_detection/run.sh          # rates on every real photo of ../shared + non-face images
#   bash experiments/face_detection/run.sh align    # only the "are these sets aligned already?" statistics
# Writes results/detection_rates.{json,md} and results/alignment.json. The detector throughput is a timing:
# `python -m deepfake_lightning.bench tasks=[faces]` on an idle machine (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/face_detection
PY=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
ONLY=${1:-all}
if [[ $ONLY == all ]]; then
  "$PY" -m deepfake_lightning.faces.detection_rates --data "$SHARED" --out "$HERE/results"
fi
"$PY" "$HERE/alignment_stats.py" "$SHARED" "$HERE/results/alignment.json"
