"""`device=` settings: one reading for eval/robustness, bench and the inference backends."""

import pytest
import torch

from deepfake_lightning.utils.device import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("name", ["auto", None])
def test_auto_is_the_cpu_without_cuda(no_cuda, name):
    assert resolve_device(name) == torch.device("cpu")


def test_auto_is_the_first_gpu_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_names_are_read_by_torch(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    # ONNX Runtime's CUDA provider does not need torch's CUDA build, so the backend asks without the check
    assert resolve_device("cuda:1", check_available=False) == torch.device("cuda", 1)


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_says_what_to_use(no_cuda, name):
    with pytest.raises(ValueError, match=f"device={name} but no CUDA device is visible; use device=auto"):
        resolve_device(name)


def test_a_gpu_index_past_the_visible_ones(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device=cuda:2 but only 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu0", "cuda:x", ""])
def test_a_bad_name_is_a_clear_error(name):
    with pytest.raises(ValueError, match=r"is not a device .*use auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_every_caller_uses_the_one_function():
    from deepfake_lightning.bench import run
    from deepfake_lightning.evaluation import eval_setup
    from deepfake_lightning.inference import backends

    assert run.resolve_device is eval_setup.resolve_device is backends.resolve_device is resolve_device
