"""The probe forward: each model's target layer and whether its head is GAP -> Linear."""

from __future__ import annotations

import pytest

import livecam


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
