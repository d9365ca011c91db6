"""Grad-CAM against a reference written from the paper's formula: the closed form, the backward pass, the GPU."""

from __future__ import annotations

import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import to_input
from tests.conftest import (
    gradcam_reference,
    normalize_reference,
    photo_bgr,
    random_batch,
    random_torchvision,
    relative_error,
)

TOL = 1e-5


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_gradcam_matches_float64_reference_on_random_torchvision_models(name: str) -> None:
    module = random_torchvision(name)
    x = random_batch(1)
    explainer = livecam.Explainer(module, "gradcam")
    result = explainer(x)
    ref, classes, _, logits = gradcam_reference(module, explainer.layer, x)
    assert torch.equal(result.classes, classes)
    assert relative_error(result.raw, ref) < TOL
    assert relative_error(result.cams, normalize_reference(ref, (224, 224))) < TOL
    assert relative_error(result.logits, logits) < TOL


def test_gradcam_matches_reference_on_the_real_model(lite0) -> None:
    x = to_input([photo_bgr("chelsea"), photo_bgr("coffee"), photo_bgr("astronaut")], lite0.preprocess)
    explainer = livecam.Explainer(lite0, "gradcam")
    for classes in (None, torch.tensor([285, 967, 0])):  # top-1, then fixed classes
        result = explainer(x, classes=classes)
        ref, chosen, _, _ = gradcam_reference(lite0.module, "_head_act", x, classes)
        assert torch.equal(result.classes, chosen)
        assert relative_error(result.raw, ref) < TOL
        assert relative_error(result.cams, normalize_reference(ref, (224, 224))) < TOL
    explainer.remove()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_gradcam_matches_cpu(lite0) -> None:
    gpu = livecam.load_model("efficientnet_lite0", device="cuda")
    x = to_input(photo_bgr("chelsea"), gpu.preprocess)
    a = livecam.Explainer(gpu)(x.cuda())
    b = livecam.Explainer(lite0)(x)
    assert a.cams.is_cuda and a.raw.is_cuda
    assert torch.equal(a.classes.cpu(), b.classes)
    assert (a.cams.cpu() - b.cams).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_closed_form_gradients_equal_the_backward_pass(name: str, lite0) -> None:
    module = lite0 if name == "efficientnet_lite0" else random_torchvision(name)
    fast = livecam.Explainer(module, "gradcam")  # GAP -> Linear: W_c / (h w), no autograd graph
    slow = livecam.Explainer(module, "gradcam", gradients="autograd")
    x = random_batch(21)
    a, b = fast(x), slow(x)
    assert a.logits.grad_fn is None  # no graph was built
    assert relative_error(a.raw, b.raw) < TOL and (a.cams - b.cams).abs().max() < TOL
    fast.remove(), slow.remove()


def test_gradcam_on_a_head_that_is_not_gap_linear_uses_the_backward_pass() -> None:
    module = random_torchvision("convnext_tiny")
    explainer = livecam.Explainer(module, "gradcam")
    assert explainer._head_weight is None and explainer._autograd
    x = random_batch(4, n=1)
    result = explainer(x)
    ref, _, _, _ = gradcam_reference(module, explainer.layer, x)
    assert relative_error(result.raw, ref) < TOL
