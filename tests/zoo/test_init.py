"""load_model's names, classes and devices, and what it gives for the real EfficientNet-Lite0."""

from __future__ import annotations

import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import to_input
from livecam.zoo import resolve_class, resolve_device
from tests.conftest import CAT_CLASSES, photo_bgr


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
