"""The model zoo: the real EfficientNet-Lite0, torchvision models, weights files, names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import to_input
from livecam.zoo import resolve_class, resolve_device
from livecam.zoo import torchvision_models as tvm
from tests.conftest import CAT_CLASSES, photo_bgr, random_torchvision


def _top1(model, name: str) -> str:
    with torch.no_grad():
        logits = model.module(to_input(photo_bgr(name), model.preprocess))
    return model.class_names[int(logits.argmax())]


def test_real_efficientnet_lite0_recognizes_real_photographs(lite0) -> None:
    assert _top1(lite0, "chelsea") in CAT_CLASSES
    assert _top1(lite0, "coffee") == "espresso"


def test_lite0_is_set_up_for_explaining(lite0) -> None:
    assert lite0.name == "efficientnet_lite0"
    assert lite0.target_layer == "_head_act"  # the pooled tensor, after its ReLU6
    assert lite0.head.kind == "gap_linear" and lite0.head.linear is lite0.module._fc
    assert lite0.info.feature_shape == (1, 1280, 7, 7)
    assert len(lite0.class_names) == 1000 and lite0.class_names[967] == "espresso"
    assert not lite0.module.training
    assert not any(p.requires_grad for p in lite0.module.parameters())


@pytest.mark.parametrize(
    "name, layer, head",
    [
        ("resnet18", "layer4", "gap_linear"),
        ("mobilenet_v2", "features", "gap_linear"),
        ("efficientnet_b0", "features", "gap_linear"),
        ("convnext_tiny", "features", "other"),  # LayerNorm between the pooling and the Linear
        ("vgg11", "avgpool", "other"),  # an MLP head
    ],
)
def test_target_layer_and_head_of_torchvision_models(name: str, layer: str, head: str) -> None:
    model = livecam.load_model(name, weights="random")
    assert model.target_layer == layer
    assert model.head.kind == head
    assert model.preprocess.size == (224, 224)


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


def test_unknown_model_suggests_a_near_name() -> None:
    with pytest.raises(livecam.LivecamError, match="unknown model 'resnet51'.*did you mean.*resnet50"):
        livecam.load_model("resnet51")


def test_resolve_class_by_name_or_index(lite0) -> None:
    names = lite0.class_names
    assert resolve_class("TABBY", names) == 281
    assert resolve_class("espresso", names) == 967
    assert resolve_class("999", names) == 999
    with pytest.raises(livecam.LivecamError, match="unknown class 'tabbby'.*did you mean tabby"):
        resolve_class("tabbby", names)
    with pytest.raises(livecam.LivecamError, match="out of range"):
        resolve_class("1000", names)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(livecam.LivecamError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(livecam.LivecamError, match="CUDA is not available.*use device cpu"):
            resolve_device("cuda:0")
