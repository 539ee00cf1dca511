"""A plain (non-editable) install carries its configs, its Hydra plugin and its console scripts.

The wheel is built from a copy of the source (the build writes build/ and *.egg-info beside it), installed into
a throwaway venv that borrows the project venv's packages through a .pth file (torch is not reinstalled), and
run from a directory outside the checkout, so every config must come from the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools.config.pyprojecttoml import read_configuration
from setuptools.discovery import PEP420PackageFinder

from tests.conftest import REPO_ROOT

SOURCES = ("pyproject.toml", "README.md", "conf", "deepfake_lightning", "hydra_plugins")


def _setuptools_config() -> dict:
    return read_configuration(REPO_ROOT / "pyproject.toml", expand=False)["tool"]["setuptools"]


def _package_dir(package: str) -> Path:
    if package.startswith("deepfake_lightning.conf"):
        return REPO_ROOT / "conf" / "/".join(package.split(".")[2:])
    return REPO_ROOT / package.replace(".", "/")


def test_pyproject_lists_every_package_and_config_group() -> None:
    """`packages` is a list (conf/ needs a package-dir mapping), so a new package or config group must be added."""
    code = PEP420PackageFinder.find(str(REPO_ROOT), include=["deepfake_lightning*", "hydra_plugins*"])
    groups = PEP420PackageFinder.find(str(REPO_ROOT / "conf"), exclude=["local", "local.*"])
    expected = {*code, "deepfake_lightning.conf", *(f"deepfake_lightning.conf.{g}" for g in groups)}
    listed = set(_setuptools_config()["packages"])
    assert not expected - listed, (
        f"add to [tool.setuptools] packages in pyproject.toml: {sorted(expected - listed)}"
    )
    assert not listed - expected, f"no such package, remove from pyproject.toml: {sorted(listed - expected)}"


def test_every_data_file_is_package_data() -> None:
    """A non-Python file in a package (a config, a web page) reaches the wheel only through package-data."""
    config = _setuptools_config()
    patterns = config.get("package-data", {})
    missing = []
    for package in config["packages"]:
        folder = _package_dir(package)
        globs = [*patterns.get("*", []), *patterns.get(package, [])]
        for file in folder.iterdir() if folder.is_dir() else []:
            if (
                file.is_file()
                and file.suffix not in (".py", ".pyc")
                and not any(file.match(g) for g in globs)
            ):
                missing.append(str(file.relative_to(REPO_ROOT)))
    assert not missing, f"not in any [tool.setuptools.package-data] pattern of pyproject.toml: {missing}"


def _copy_sources(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "local", "*.egg-info", "build")
    dest.mkdir(parents=True)
    for name in SOURCES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    return dest


def _throwaway_venv(path: Path) -> Path:
    """A venv without pip whose site-packages also sees the project venv's (torch, lightning, hydra, ...)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # a path line, not the project venv's own .pth files: its editable finder (pointing at the checkout) stays out
    (Path(site) / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROJECT_ROOT")}
    env.update(WANDB_MODE="offline", MPLBACKEND="Agg")
    return subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def test_wheel_installs_and_trains_from_another_directory(tmp_path: Path) -> None:
    source = _copy_sources(tmp_path / "src")
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            "dist",
            str(source),
        ],
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stdout[-3000:]
    (wheel,) = (tmp_path / "dist").glob("deepfake_lightning-*.whl")
    python = _throwaway_venv(tmp_path / "venv")
    install = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = _run(
        [
            str(python),
            "-c",
            "import sys, deepfake_lightning, hydra_plugins.deepfake_optuna_sweeper as s\n"
            "from hydra.core.plugins import Plugins\n"
            "from hydra.plugins.sweeper import Sweeper\n"
            "from deepfake_lightning.utils.hydra_main import config_dir\n"
            "print(deepfake_lightning.__file__, s.__file__, config_dir(), sep='\\n')\n"
            "print(sorted(p.__name__ for p in Plugins.instance().discover(Sweeper)))\n"
            f"print({str(REPO_ROOT)!r} in sys.path)",
        ],
        cwd=elsewhere,
    )
    assert probe.returncode == 0, probe.stdout[-3000:]
    package, plugin, conf, sweepers, checkout_on_path = probe.stdout.strip().splitlines()[-5:]
    installed = tmp_path / "venv"
    assert Path(package).is_relative_to(installed) and Path(plugin).is_relative_to(installed)
    assert Path(conf) == Path(package).parent / "conf" and (Path(conf) / "debug" / "fdr.yaml").is_file()
    assert "DeepfakeOptunaSweeper" in sweepers and checkout_on_path == "False"

    run = _run(
        [
            str(python),
            "-m",
            "deepfake_lightning.train",
            "+experiment=fast",
            "debug=fdr",
            "data.n_train=8",
            "data.n_valid=4",
            "data.n_test=4",
            "data.image_size=40",
            "data.generator_workers=1",
            "~callbacks.rich_progress_bar",
        ],
        cwd=elsewhere,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    (run_dir,) = (elsewhere / "logs" / "debug" / "runs").iterdir()
    assert json.loads((run_dir / "run_summary.json").read_text())["status"] == "ok"
    assert json.loads((run_dir / "test_results.json").read_text())["n"] == 8
    assert not (REPO_ROOT / "logs" / "debug").exists() or run_dir.is_relative_to(elsewhere)

    # the console script composes from the packaged configs too (--cfg job: print the config, run nothing)
    script = _run([str(installed / "bin" / "dfl-train"), "+experiment=fast", "--cfg", "job"], cwd=elsewhere)
    assert script.returncode == 0, script.stdout[-3000:]
    assert "max_time: 00:00:04:00" in script.stdout and "fast_dev_run: false" in script.stdout
