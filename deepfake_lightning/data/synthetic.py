"""Procedural "real vs fake faces" dataset: the framework's built-in, network-free data.

:func:`generate_synthetic_dataset` writes the exact layout of Kaggle's *140k Real and Fake Faces*,
so every pipeline that reads the real dataset runs unchanged on it::

    <out_dir>/train.csv, valid.csv, test.csv        # original_path,id,label,label_str,path
    <out_dir>/real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}/<id>.jpg
    <out_dir>/synthetic_meta.json                   # parameters; written last = "complete" marker

``label`` is 1 for real and 0 for fake (as in Kaggle), ``path`` is relative to ``real-vs-fake/``.
CSV rows are in a seeded shuffled order (classes interleaved, like Kaggle's), ids are unique numbers.

What the images are
-------------------
Every image, real or fake, is a face-like drawing sampled from the *same* distributions: a gradient
background with blobs and clutter, shoulders, neck, hair, a rotated skin-toned face ellipse with ears,
eyes (iris, pupil), brows, nose, mouth and optional glasses, random pose/scale/position, directional
lighting, exposure, white balance, skin mottling and sensor noise (shapes are anti-aliased by drawing at
2x). Colour, brightness and geometry therefore carry no label information: a logistic regression on
per-image mean R, G, B and brightness is at chance (AUC ~0.5).

Fakes then receive one or more of the traces real generators leave, each with random strength:

* **upsampling** (60%) - the image (or only the face region) is box-downsampled by 2 (sometimes 4 at
  >=128 px) and re-upsampled either by nearest neighbour (blocky) or by a stride-2 transposed
  convolution with an uneven kernel (checkerboard); this also wipes the natural sensor-noise texture;
* **spectral peaks** (50%) - a faint 2-D lattice of cosines with the periods of upsampling layers
  (2-4 px, 4-8 grey levels, random phase, axis-aligned or diagonal): the peaks of GAN spectra;
* **blending seam** (45%) - the face is pasted back through a feathered elliptical mask after a blur and
  a per-channel colour shift, leaving a colour/sharpness discontinuity along the face boundary.

All traces are brightness-neutral (on average), and both classes are JPEG-encoded with a quality drawn from the same
range, so neither colour nor compression is a shortcut. The traces are local high-frequency texture
statistics (resize/blur augmentations weaken them): a small from-scratch CNN learns them in seconds
(tiny 4-conv CNN, 1000/class, 64 px, 1 CPU thread: test AUC ~0.97 after 20 s, ~0.99 after 1 min);
MobileNetV2 from scratch reaches ~0.93 in 2 min and finds lattice-only fakes (~11%) the hardest.

Each image is seeded from ``(seed, split, class, index)``: output is byte-identical for the same
parameters and independent of ``workers``. Speed per CPU core: ~650 images/s at 64 px, ~75 images/s
at 256 px; the full 100k/20k/20k-per-class 256-px set (280k images, ~5 GB) takes ~30-40 min with
``workers=2`` on two free cores.

CLI: ``python -m deepfake_lightning.data.synthetic out_dir=data/synthetic n_train=1000 image_size=64``
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import shutil
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deepfake_lightning.data.synthetic_faces import add_fake_traces, render_face

GENERATOR_VERSION = 1
SPLITS = ("train", "valid", "test")
CLASSES = ("real", "fake")  # class index 0 = real (label 1), 1 = fake (label 0)
META_NAME = "synthetic_meta.json"


def render_image(
    seed: int, split: str, cls: str, index: int, image_size: int, quality: tuple[int, int]
) -> bytes:
    """JPEG bytes of one image; a pure function of its arguments (the unit of determinism)."""
    key = [seed, SPLITS.index(split), CLASSES.index(cls), index]
    sem = np.random.default_rng(np.random.SeedSequence([*key, 0]))  # semantics: same for both classes
    img, geom = render_face(sem, image_size)
    if cls == "fake":
        img = add_fake_traces(img, geom, np.random.default_rng(np.random.SeedSequence([*key, 1])))
    buf = io.BytesIO()
    q = int(sem.integers(quality[0], quality[1] + 1))
    Image.fromarray(np.round(img).astype(np.uint8)).save(buf, "JPEG", quality=q)
    return buf.getvalue()


def _write_one(task: tuple[str, int, str, int, str, int, tuple[int, int]]) -> None:
    path, seed, split, index, cls, size, quality = task
    Path(path).write_bytes(render_image(seed, split, cls, index, size, quality))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _meta(arguments: Mapping[str, Any]) -> dict[str, object]:
    """What the meta file records for `generate_synthetic_dataset(**arguments)`: every parameter that shapes
    the images, defaults filled in (`out_dir` and `workers` do not)."""
    bound = inspect.signature(generate_synthetic_dataset).bind(**arguments)
    bound.apply_defaults()
    meta = {k: v for k, v in bound.arguments.items() if k not in ("out_dir", "workers")}
    return {"generator_version": GENERATOR_VERSION, **meta, "jpeg_quality": list(meta["jpeg_quality"])}


def _is_complete(out: Path, meta: Mapping[str, object]) -> bool:
    meta_path = out / META_NAME
    if not meta_path.is_file() or not all((out / f"{s}.csv").is_file() for s in SPLITS):
        return False
    try:
        return json.loads(meta_path.read_text()) == meta
    except json.JSONDecodeError:
        return False


def is_generated(out_dir: str | Path, **parameters: Any) -> bool:
    """True when ``out_dir`` holds a complete set that `generate_synthetic_dataset(out_dir, **parameters)`
    would reuse (its meta file is written last)."""
    return _is_complete(Path(out_dir), _meta({"out_dir": out_dir, **parameters}))


def generate_synthetic_dataset(
    out_dir: str | Path,
    n_train: int = 1000,
    n_valid: int = 200,
    n_test: int = 200,
    image_size: int = 64,
    seed: int = 0,
    jpeg_quality: tuple[int, int] = (88, 96),
    workers: int = 1,
) -> Path:
    """Generate (once) the synthetic dataset and return ``<out_dir>/real_vs_fake/real-vs-fake``.

    ``n_*`` are images per class per split. Reuses an existing set when ``synthetic_meta.json`` records
    the same parameters (``workers`` excluded); otherwise deletes the old splits and regenerates.
    The meta file is removed first and written last, so an interrupted run is never taken as complete.
    Not safe for concurrent calls on one ``out_dir``: call it from one process (e.g. ``prepare_data``).
    """
    meta = _meta(locals())  # first, while the locals are just the arguments
    if image_size < 32 or image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 and >= 32, got {image_size}")
    if not 1 <= jpeg_quality[0] <= jpeg_quality[1] <= 100:
        raise ValueError(f"jpeg_quality must be an increasing (low, high) in [1, 100], got {jpeg_quality}")
    out = Path(out_dir)
    root = out / "real_vs_fake" / "real-vs-fake"
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    meta_path = out / META_NAME
    if _is_complete(out, meta):
        return root
    meta_path.unlink(missing_ok=True)
    shutil.rmtree(out / "real_vs_fake", ignore_errors=True)
    for s in SPLITS:
        (out / f"{s}.csv").unlink(missing_ok=True)

    width = max(5, len(str(2 * sum(counts.values()) - 1)))
    tasks, rows, next_id = [], {s: [] for s in SPLITS}, 0
    for split, n in counts.items():
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                name = f"{next_id:0{width}d}.jpg"
                next_id += 1
                rel = f"{split}/{cls}/{name}"
                tasks.append((str(root / rel), seed, split, i, cls, image_size, tuple(jpeg_quality)))
                label = 1 if cls == "real" else 0
                rows[split].append([f"synthetic/seed={seed}/{rel}", name, label, cls, rel])
    if workers > 1 and len(tasks) > 1:
        # fork on Linux: no re-import of the (heavy) package or of __main__ per worker; children only
        # touch numpy/PIL. spawn elsewhere (fork is unsafe on macOS).
        ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            chunk = max(1, min(64, len(tasks) // (4 * workers)))
            for _ in pool.map(_write_one, tasks, chunksize=chunk):
                pass
    else:
        for t in tasks:
            _write_one(t)

    order_rng = np.random.default_rng(seed)
    for split, split_rows in rows.items():
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["original_path", "id", "label", "label_str", "path"])
        writer.writerows(split_rows[j] for j in order_rng.permutation(len(split_rows)))
        _atomic_write(out / f"{split}.csv", buf.getvalue())
    _atomic_write(meta_path, json.dumps(meta, indent=2) + "\n")
    return root


def _parse_cli(argv: list[str]) -> dict[str, object]:
    """``key=value`` arguments (Hydra style), coerced to the type of the parameter's default."""
    params = inspect.signature(generate_synthetic_dataset).parameters
    kwargs: dict[str, object] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in params:
            raise SystemExit(f"usage: key=value with key in {list(params)}; got {arg!r}")
        default = params[key].default
        if isinstance(default, bool):
            kwargs[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            kwargs[key] = int(value)
        elif isinstance(default, tuple):
            kwargs[key] = tuple(int(v) for v in value.strip("[]()").split(","))
        else:
            kwargs[key] = value
    if "out_dir" not in kwargs:
        raise SystemExit("out_dir=DIR is required")
    return kwargs


def main(argv: list[str] | None = None) -> None:
    root = generate_synthetic_dataset(**_parse_cli(sys.argv[1:] if argv is None else argv))  # type: ignore[arg-type]
    print(f"root: {root}")
    for split in SPLITS:
        print(split, {c: sum(1 for _ in (root / split / c).glob("*.jpg")) for c in CLASSES})


if __name__ == "__main__":
    main()
