"""Model files passed by users: random bytes, truncated, another architecture, a plain state_dict and pickles
that would run code. Each is a clear error in every loader; the code-running ones never run."""

from __future__ import annotations

import builtins
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from deepfake_lightning.bundle import CheckpointError, open_model
from deepfake_lightning.utils.task import run_task
from tests.conftest import REPO_ROOT
from tests.fixtures_inference import compose_entry

pytest_plugins = ("tests.fixtures_inference",)  # tiny_ckpt shared fixture


class RunsCode:
    """Unpickling this calls open(marker, "w"): the marker file exists iff the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        return (builtins.open, (self.marker, "w"))


class RunsShell(RunsCode):
    """Unpickling this runs a shell command (`posix.system`) that creates the marker."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch '{self.marker}'",))


def _bad_files(folder: Path, tiny_ckpt: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """kind -> (file, regex of the error)."""
    import torchvision

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, str]] = {}

    def add(kind: str, name: str, writer: Callable[[Path], None], match: str) -> None:
        path = folder / name
        writer(path)
        files[kind] = (path, match)

    good = tiny_ckpt.read_bytes()
    add(
        "random bytes",
        "random.ckpt",
        lambda p: p.write_bytes(os.urandom(4096)),
        "not a readable PyTorch checkpoint",
    )
    add(
        "truncated",
        "truncated.ckpt",
        lambda p: p.write_bytes(good[: len(good) // 2]),
        "not a readable PyTorch checkpoint",
    )
    other = {"state_dict": torchvision.models.resnet18().state_dict(), "hyper_parameters": {"lr": 0.1}}
    add(
        "another architecture",
        "resnet18.ckpt",
        lambda p: torch.save(other, p),
        r"does not match the advanced_v2 architecture it describes \(\d+ tensor\(s\) missing, unexpected or of another shape, e.g. ",
    )
    state = torch.load(tiny_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    add("plain state_dict", "state_dict.ckpt", lambda p: torch.save(state, p), "holds a plain state_dict")
    add(
        "pickle running code (torch zip)",
        "evil.ckpt",
        lambda p: torch.save({"state_dict": RunsCode(marker)}, p),
        r"refused to unpickle \(it needs io.open",
    )
    add(
        "pickle running a shell command (torch zip)",
        "shell.ckpt",
        lambda p: torch.save({"state_dict": RunsShell(marker)}, p),
        r"refused to unpickle \(it needs posix.system",  # the blocked call is named
    )
    add(
        "pickle running code (raw pickle)",
        "evil_raw.ckpt",
        lambda p: p.write_bytes(pickle.dumps(RunsCode(marker))),
        "not a readable PyTorch checkpoint",
    )
    return files


@pytest.fixture(scope="module")
def bad_models(
    tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path
) -> tuple[dict[str, tuple[Path, str]], Path]:
    folder = tmp_path_factory.mktemp("bad_models")
    marker = folder / "CODE_RAN"
    return _bad_files(folder, tiny_ckpt, marker), marker


def test_the_code_running_pickles_do_run_code_when_unpickled_unsafely(bad_models) -> None:
    """Control: without weights_only the pickles really run code, so the checks below can fail."""
    files, marker = bad_models
    for kind in ("pickle running code (torch zip)", "pickle running a shell command (torch zip)"):
        torch.load(files[kind][0], weights_only=False)
        assert marker.exists(), kind
        marker.unlink()
    pickle.loads(files["pickle running code (raw pickle)"][0].read_bytes())
    assert marker.exists()
    marker.unlink()


KINDS = [
    "random bytes",
    "truncated",
    "another architecture",
    "plain state_dict",
    "pickle running code (torch zip)",
    "pickle running a shell command (torch zip)",
    "pickle running code (raw pickle)",
]


@pytest.mark.parametrize("kind", KINDS)
def test_open_model(bad_models, kind: str) -> None:
    files, marker = bad_models
    path, match = files[kind]
    with pytest.raises(CheckpointError, match=match) as info:
        open_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def _entry_configs(path: Path, tmp_path: Path, images: Path) -> dict[str, tuple[Callable, object]]:
    from deepfake_lightning.eval import evaluate
    from deepfake_lightning.predict import predict
    from deepfake_lightning.serve import serve
    from deepfake_lightning.train import train

    return {
        "eval": (
            evaluate,
            compose_entry("eval", [f"ckpt_path={path}", "trainer.accelerator=cpu"], tmp_path / "eval"),
        ),
        "predict": (
            predict,
            compose_entry(
                "predict", [f"ckpt_path={path}", f"input={images}", "num_workers=0"], tmp_path / "predict"
            ),
        ),
        "serve": (serve, compose_entry("serve", [f"ckpt_path={path}"], tmp_path / "serve")),
        "train resume": (
            train,
            compose_entry("train", ["trainer.accelerator=cpu", f"ckpt_path={path}"], tmp_path / "train"),
        ),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_every_entry_point_stops_with_one_line(
    bad_models, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval, predict, serve and train (resume) through `run_task`, exactly as their CLIs run them."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server must not start"))
    files, marker = bad_models
    path, match = files[kind]
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"not needed: the model fails first")
    for name, (task, cfg) in _entry_configs(path, tmp_path, images).items():
        with pytest.raises(SystemExit) as info:
            run_task(task, cfg)
        message = str(info.value.code)
        assert message.startswith("Invalid input: ") and str(path) in message, (name, message)
        expected = "cannot resume from it: it has no pytorch-lightning_version, loops, optimizer_states"
        if name == "train resume" and kind == "another architecture":
            match = expected
        assert re.search(match, message) and "\n" not in message, (name, message)
        assert not marker.exists(), name


def test_predict_cli_process_prints_one_line_and_runs_no_code(bad_models, tmp_path: Path) -> None:
    files, marker = bad_models
    path = files["pickle running code (torch zip)"][0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepfake_lightning.predict",
            f"ckpt_path={path}",
            f"input={REPO_ROOT / 'README.md'}",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Invalid input: {path}: refused to unpickle") and "Traceback" not in result.stderr
    assert not marker.exists()


def test_resuming_with_another_network_config_is_refused(tiny_ckpt: Path, tmp_path: Path) -> None:
    from deepfake_lightning.train import train

    cfg = compose_entry(
        "train",
        [
            "trainer.accelerator=cpu",
            f"ckpt_path={tiny_ckpt}",
            "model.head.hidden=[16]",
            "model.head.dropout=[0.1,0.1]",
        ],
        tmp_path / "train",
    )
    with pytest.raises(
        SystemExit, match=r"cannot resume: its network differs from the one this config builds \(\d+ tensor"
    ):
        run_task(train, cfg)
