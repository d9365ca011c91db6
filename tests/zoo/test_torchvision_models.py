"""torchvision's models by name: weights files (checkpoints, misfits, pickles) and the hub cache, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import livecam
from livecam.zoo import torchvision_models as tvm
from tests.conftest import random_torchvision


def test_weights_file_round_trip(tmp_path: Path) -> None:
    source = random_torchvision("resnet18", seed=7)
    path = tmp_path / "resnet18.pt"
    torch.save({"state_dict": source.state_dict()}, path)  # a checkpoint wrapping a state dict
    model = livecam.load_model("resnet18", weights=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(model.module.state_dict()[key], value)
    assert model.weights == str(path)


def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.pt"
    torch.save(random_torchvision("mobilenet_v2").state_dict(), path)
    with pytest.raises(livecam.LivecamError, match="do not fit model 'resnet18'.*missing keys"):
        livecam.load_model("resnet18", weights=str(path))
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(livecam.LivecamError, match="could not read weights file"):
        livecam.load_model("resnet18", weights=str(bad))
    with pytest.raises(livecam.LivecamError, match="does not exist"):
        livecam.load_model("resnet18", weights=str(tmp_path / "missing.pt"))


def test_pickled_modules_are_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(random_torchvision("resnet18"), path)  # a pickled module, not a state dict
    with pytest.raises(livecam.LivecamError, match="could not read weights file"):
        livecam.load_model("resnet18", weights=str(path))


def test_torchvision_default_weights_from_the_cache_without_network(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tvm.cached_weights_path("resnet18")
    assert cached.is_relative_to(tmp_path)
    cached.parent.mkdir(parents=True)
    state = random_torchvision("resnet18", seed=3).state_dict()
    torch.save(state, cached)

    def no_network(*_args, **_kwargs):
        raise AssertionError("must not download when the weights are cached")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    model = livecam.load_model("resnet18")
    assert torch.equal(model.module.fc.weight, state["fc.weight"])


def test_missing_torchvision_weights_give_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*_args, **_kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(livecam.LivecamError, match="not cached at .* could not be downloaded.*pass weights FILE"):
        livecam.load_model("resnet18")


def test_safetensors_weights_for_torchvision_models(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = random_torchvision("resnet18", seed=8)
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    model = livecam.load_model("resnet18", weights=str(path))
    assert torch.equal(model.module.fc.weight, source.fc.weight)
    assert (model.family, model.weights) == ("torchvision", str(path))
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(livecam.LivecamError, match="could not read weights file .*bad.safetensors as safetensors"):
        livecam.load_model("resnet18", weights=str(tmp_path / "bad.safetensors"))
