"""`python -m deepfake_lightning.bench.decode_memory ckpt_path=MODEL [requests=24] [side=7000] [out=FILE]`

The server's memory while `requests` uploads of a `side` x `side` single-colour PNG (49 megapixels at 7000: ~0.16 MB
each, ~0.37 GB once decoded) arrive at once: resident memory before, at the peak (`VmHWM`, reset just before
the uploads) and after, with the statuses and the time taken. It starts the real server
(`python -m deepfake_lightning.serve`) with `max_pixels` set to admit the images and any `overrides=[...]` (e.g.
`overrides=[decode_pixels=1000000000000]` for no decode budget), and prints one JSON object (also written to
`out`). Memory figures are only comparable on a quiet machine: report `load_average` beside them.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from omegaconf import OmegaConf
from PIL import Image

from deepfake_lightning.inference.server_process import ServerProcess, peak_rss_bytes

MIB = 1 << 20


def flat_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 110, 100)).save(buffer, "PNG")
    return buffer.getvalue()


def measure(
    ckpt_path: str,
    requests: int = 24,
    side: int = 7000,
    overrides: Sequence[str] = (),
    timeout_s: float = 600,
) -> dict[str, Any]:
    png = flat_png(side)
    server_overrides = [f"max_pixels={side * side}", f"max_request_pixels={side * side}", *overrides]
    with ServerProcess(ckpt_path, server_overrides) as server:
        before = server.rss_bytes() or 0
        peak_rss_bytes(server.pid, reset=True)
        start = time.monotonic()
        with ThreadPoolExecutor(requests) as pool:
            statuses = list(
                pool.map(
                    lambda i: (
                        httpx.post(
                            f"{server.url}/v1/predict", files={"file": (f"{i}.png", png)}, timeout=timeout_s
                        ).status_code
                    ),
                    range(requests),
                )
            )
        seconds = time.monotonic() - start
        peak = peak_rss_bytes(server.pid) or 0
        time.sleep(1.0)
        after = server.rss_bytes() or 0
    return {
        "requests": requests,
        "pixels_each": side * side,
        "upload_bytes_each": len(png),
        "overrides": list(overrides),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "seconds": round(seconds, 2),
        "rss_before_mib": round(before / MIB),
        "rss_peak_mib": round(peak / MIB),
        "rss_after_mib": round(after / MIB),
        "peak_growth_mib": round((peak - before) / MIB),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("ckpt_path=") for a in args) or any("=" not in a for a in args):
        raise SystemExit(__doc__)
    options = OmegaConf.to_container(OmegaConf.from_dotlist(args), resolve=True)
    assert isinstance(options, dict)
    out = options.pop("out", None)
    summary = measure(**{str(k): v for k, v in options.items()})
    text = json.dumps(summary, indent=2)
    print(text)
    if out:
        Path(str(out)).write_text(text + "\n")
    return summary


if __name__ == "__main__":
    main()
