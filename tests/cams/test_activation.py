"""CAM and Score-CAM against references written from their papers (Eigen-CAM's is with the family's)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import livecam
from livecam.engines.pytorch.engine import to_input
from tests.conftest import (InplaceHead, capture64, gradcam_reference, photo_bgr, random_batch, random_torchvision,
                            relative_error)

TOL = 1e-5


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_lite0"])
def test_cam_equals_gradcam_for_gap_linear_heads(name: str, lite0) -> None:
    module = lite0 if name == "efficientnet_lite0" else random_torchvision(name)
    cam = livecam.Explainer(module, "cam")
    grad = livecam.Explainer(module, "gradcam")
    for seed in range(4):
        x = random_batch(seed + 10)
        a, b = cam(x), grad(x)
        assert torch.equal(a.classes, b.classes)
        assert (a.cams - b.cams).abs().max() < TOL
        # CAM is W A / Z scaled: Grad-CAM's raw map is CAM's divided by h * w
        h, w = a.raw.shape[-2:]
        assert relative_error(b.raw * h * w, a.raw) < TOL
    cam.remove(), grad.remove()


def test_cam_matches_its_formula(lite0) -> None:
    x = to_input(photo_bgr("chelsea"), lite0.preprocess)
    result = livecam.Explainer(lite0, "cam")(x)
    _, classes, acts, _ = gradcam_reference(lite0.module, "_head_act", x)
    w = lite0.module._fc.weight.double()[classes]
    ref = F.relu(torch.einsum("nk,nkhw->nhw", w, acts))
    assert relative_error(result.raw, ref) < TOL


def test_cam_builds_no_autograd_graph(lite0) -> None:
    explainer = livecam.Explainer(lite0, "cam")
    result = explainer(to_input(photo_bgr("coffee"), lite0.preprocess))
    assert not result.logits.requires_grad and result.logits.grad_fn is None
    assert not result.raw.requires_grad


def test_cam_refuses_heads_that_are_not_gap_linear() -> None:
    with pytest.raises(livecam.LivecamError, match="not global average pooling followed by one Linear"):
        livecam.Explainer(random_torchvision("convnext_tiny"), "cam")
    with pytest.raises(livecam.LivecamError, match="no Linear"):
        livecam.Explainer(random_torchvision("vgg11"), "cam")


def scorecam64(module: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Score-CAM's Algorithm 1 in float64, one masked forward per channel, flat channels included."""
    ref = copy.deepcopy(module).double().eval()
    store = {}
    handle = ref.get_submodule(layer).register_forward_hook(lambda _m, _i, out: store.update(a=out.detach().clone()))
    with torch.no_grad():
        logits = ref(x.double())
        handle.remove()
        a = store["a"]
        out = []
        for s in range(len(x)):
            c = int(logits[s].argmax())
            up = F.interpolate(a[s][:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
            masks = torch.where(hi > lo, (up - lo) / torch.where(hi > lo, hi - lo, 1.0), 0.0)
            scores = torch.cat([torch.softmax(ref(x[s:s + 1].double() * m[:, None]), dim=1)[:, c]
                                for m in masks.split(128)])
            alpha = torch.softmax(scores, dim=0)
            out.append(torch.clamp((alpha[:, None, None] * a[s]).sum(0), min=0))
    return torch.stack(out)


def test_scorecam_matches_algorithm_1(lite0) -> None:
    # The real model at its head (1280 channels after ReLU6, many of them flat) on a small photo,
    # and a batch of two through a small random model with an in-place ReLU after its target.
    small = F.interpolate(livecam.to_input(photo_bgr("coffee"), lite0.preprocess), size=(64, 64), mode="area")
    torch.manual_seed(2)
    cases = {"efficientnet_lite0": (lite0.module, small),
             "inplace_head": (InplaceHead().eval(), torch.randn(2, 3, 32, 32))}
    for name, (module, x) in cases.items():
        with livecam.Explainer(module, "scorecam", input_size=tuple(x.shape[-2:])) as explainer:
            result = explainer(x)
            a, _ = capture64(module, explainer.layer, x)
            if name == "efficientnet_lite0":
                assert (a.flatten(2).amax(2) == a.flatten(2).amin(2)).any(), "flat channels take the shortcut"
            assert relative_error(result.raw, scorecam64(module, explainer.layer, x)) < TOL, name
    assert result.logits.grad_fn is None
