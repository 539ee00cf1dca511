"""Are the shared sets aligned already? CenterFace's 5 landmarks on every image, then per set and class:

- eye-line angle (degrees; 0 = level): an aligned set has it near 0 with a small spread;
- inter-ocular distance as a fraction of the image side (the face's scale in the frame);
- the eye centre's position as a fraction of the side (where the face sits).

An aligned set (FFHQ's dlib alignment; what `data.face_crop` or `prepare` make) has small spreads in all three.
Landmarks come from `landmarks_for`, cached by file hash, so a rerun (or a self-blended-images run on the same
files) only hashes them.

    python experiments/face_detection/alignment_stats.py ../shared/data experiments/face_detection/results/alignment.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_lightning.faces import landmarks_for

SETS = ("ffhq_stylegan", "lfw_faceswap", "dfdc_faces")


def stats(files: list[Path]) -> dict:
    marks = landmarks_for(files, progress=False)
    found = ~np.isnan(marks[:, 0, 0])
    m = marks[found]
    side = Image.open(files[0]).size[0]
    eyes = m[:, 1] - m[:, 0]
    angle = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
    iod = np.hypot(eyes[:, 0], eyes[:, 1]) / side
    centre = (m[:, 0] + m[:, 1]) / 2 / side
    r = lambda v, d=3: round(float(v), d)  # noqa: E731
    return {
        "images": len(files),
        "with_landmarks": int(found.sum()),
        "side_px": side,
        "eye_angle_deg": {
            "mean": r(angle.mean(), 2), "std": r(angle.std(), 2),
            "p95_abs": r(np.percentile(np.abs(angle), 95), 2), "share_abs_over_5": r((np.abs(angle) > 5).mean()),
        },
        "interocular_over_side": {"mean": r(iod.mean()), "std": r(iod.std()), "cv": r(iod.std() / iod.mean())},
        "eye_centre_over_side": {"mean": [r(v) for v in centre.mean(0)], "std": [r(v) for v in centre.std(0)]},
    }  # fmt: skip


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    result = {}
    for name in SETS:
        for cls in ("real", "fake"):
            files = sorted((data / name / cls).glob("*.jpg"))
            if files:
                result[f"{name}/{cls}"] = stats(files)
                print(name, cls, json.dumps(result[f"{name}/{cls}"]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
