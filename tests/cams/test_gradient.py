"""Grad-CAM and CAM against references written from the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import livecam
from livecam.cams import normalize_maps
from livecam.engines.pytorch.engine import to_input
from tests.conftest import (
    gradcam_reference,
    normalize_reference,
    photo_bgr,
    random_torchvision,
    relative_error,
)

TOL = 1e-5


def _batch(seed: int, n: int = 2, size: int = 224) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_gradcam_matches_float64_reference_on_random_torchvision_models(name: str) -> None:
    module = random_torchvision(name)
    x = _batch(1)
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


def test_scores_are_softmax_probabilities_of_the_explained_class(lite0) -> None:
    x = to_input(photo_bgr("coffee"), lite0.preprocess)
    with livecam.Explainer(lite0) as explainer:
        result = explainer(x, classes=504)  # coffee mug, not the top class
    probs = torch.softmax(result.logits.double(), dim=1)
    assert int(result.classes[0]) == 504
    assert abs(float(result.scores[0]) - float(probs[0, 504])) < 1e-6


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_lite0"])
def test_cam_equals_gradcam_for_gap_linear_heads(name: str, lite0) -> None:
    module = lite0 if name == "efficientnet_lite0" else random_torchvision(name)
    cam = livecam.Explainer(module, "cam")
    grad = livecam.Explainer(module, "gradcam")
    for seed in range(4):
        x = _batch(seed + 10)
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


class InplaceHead(nn.Module):
    """A target module followed by an in-place ReLU (as DenseNet does)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.fc = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.features(x), inplace=True)
        return self.fc(a.mean(dim=(2, 3)))


def test_inplace_ops_after_the_target_layer_do_not_change_the_map() -> None:
    torch.manual_seed(3)
    model = InplaceHead().eval()
    x = _batch(2, size=32)
    explainer = livecam.Explainer(model, "gradcam", input_size=(32, 32))
    assert explainer.layer == "features"
    result = explainer(x)
    ref, _, _, _ = gradcam_reference(model, "features", x)
    assert relative_error(result.raw, ref) < TOL


class DeadModel(nn.Module):
    """Its feature map is all zeros: the map must be zeros, not NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(-1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", ["gradcam", "cam"])
def test_flat_maps_give_zero_heatmaps_not_nan(method: str) -> None:
    explainer = livecam.Explainer(DeadModel().eval(), method, input_size=(16, 16))
    result = explainer(_batch(0, size=16))
    assert torch.isfinite(result.cams).all()
    assert (result.cams == 0).all()


def test_explainer_rejects_bad_classes_and_inputs(lite0) -> None:
    explainer = livecam.Explainer(lite0)
    x = _batch(0, n=2)
    with pytest.raises(livecam.LivecamError, match="0 to 999"):
        explainer(x, classes=1000)
    with pytest.raises(livecam.LivecamError, match="3 classes for a batch of 2"):
        explainer(x, classes=[1, 2, 3])
    with pytest.raises(livecam.LivecamError, match="N, 3, H, W"):
        explainer(x[0])
    with pytest.raises(livecam.LivecamError, match="unknown method 'gradcma'.*gradcam"):
        livecam.Explainer(lite0, "gradcma")
    explainer.remove()


def test_explainer_takes_only_normalized_float_tensors(lite0, chelsea_bgr) -> None:
    """An array, an integer tensor or a lone image is refused, by both entry points, with what to do instead."""
    x = to_input(chelsea_bgr, lite0.preprocess)
    pixels = torch.from_numpy(np.ascontiguousarray(chelsea_bgr[:224, :224].transpose(2, 0, 1)))[None]  # uint8
    refused = {
        "numpy": (x.numpy(), r"takes a torch tensor, not a numpy\.ndarray of shape \(1, 3, 224, 224\).*"
                             r"livecam\.to_input\(frames, explainer\.preprocess\).*torch\.from_numpy\(x\)"),
        "uint8": (pixels, r"takes a normalized float tensor \(N, 3, H, W\), not a uint8 one.*livecam\.to_input"),
        "int64": (pixels.long(), r"normalized float tensor .*not a int64 one"),
        "a list": (x.tolist(), r"takes a torch tensor, not a list"),
        "one image": (x[0], r"\(N, 3, H, W\), not a tensor of shape \(3, 224, 224\); for one image, x\[None\]"),
    }
    with livecam.Explainer(lite0) as explainer:
        for call in (explainer, explainer.raw_maps):
            for bad, message in refused.values():
                with pytest.raises(livecam.LivecamError, match=message):
                    call(bad)
        # what the messages say to do works: the same maps as the preprocessed batch
        expected = explainer(x).cams
        assert torch.equal(explainer(torch.from_numpy(x.numpy())).cams, expected)
        assert torch.equal(explainer(x[0][None]).cams, expected)
        assert relative_error(explainer(x.double()).cams, expected) < TOL  # any float dtype is cast


def test_explainer_named_layer_matches_reference() -> None:
    module = random_torchvision("resnet18")
    explainer = livecam.Explainer(module, "gradcam", layer="layer3")
    x = _batch(5, n=1)
    result = explainer(x)
    ref, _, _, _ = gradcam_reference(module, "layer3", x)
    assert result.raw.shape[-2:] == (14, 14)
    assert relative_error(result.raw, ref) < TOL
    with pytest.raises(livecam.LivecamError, match="no layer 'layer5'.*layer"):
        livecam.Explainer(module, "gradcam", layer="layer5")
    with pytest.raises(livecam.LivecamError, match="not a \\(N, C, H, W\\) feature map"):
        livecam.Explainer(module, "gradcam", layer="fc")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1),
       st.floats(1e-3, 1e3), st.booleans())
def test_normalize_maps_is_min_max_into_unit_range(n, h, w, seed, scale, flat) -> None:
    gen = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, h, w, generator=gen) * scale
    if flat:
        maps[0] = scale
    out = normalize_maps(maps)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    for i in range(n):
        if maps[i].max() - maps[i].min() > 0:
            ref = (maps[i].double() - maps[i].min()) / (maps[i].max() - maps[i].min())
            assert (out[i].double() - ref).abs().max() < 1e-6
        else:
            assert (out[i] == 0).all()


def test_no_parameter_gradients_and_outputs_stay_on_the_model_device(lite0) -> None:
    result = livecam.Explainer(lite0)(_batch(0, n=1))
    assert all(p.grad is None and not p.requires_grad for p in lite0.module.parameters())
    for t in (result.cams, result.raw, result.logits, result.classes, result.scores):
        assert t.device == lite0.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_gradcam_matches_cpu(lite0) -> None:
    gpu = livecam.load_model("efficientnet_lite0", device="cuda")
    x = to_input(photo_bgr("chelsea"), gpu.preprocess)
    a = livecam.Explainer(gpu)(x.cuda())
    b = livecam.Explainer(lite0)(x)
    assert a.cams.is_cuda and a.raw.is_cuda
    assert torch.equal(a.classes.cpu(), b.classes)
    assert (a.cams.cpu() - b.cams).abs().max() < 1e-3


def test_explain_frame_gives_maps_at_the_frame_size(lite0, chelsea_bgr) -> None:
    with livecam.Explainer(lite0) as explainer:
        result = livecam.explain_frame(chelsea_bgr, explainer)
    assert result.cams.shape == (1, *chelsea_bgr.shape[:2])
    assert float(result.cams.max()) == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(result.cams.numpy()).all()


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_closed_form_gradients_equal_the_backward_pass(name: str, lite0) -> None:
    module = lite0 if name == "efficientnet_lite0" else random_torchvision(name)
    fast = livecam.Explainer(module, "gradcam")  # GAP -> Linear: W_c / (h w), no autograd graph
    slow = livecam.Explainer(module, "gradcam", gradients="autograd")
    x = _batch(21)
    a, b = fast(x), slow(x)
    assert a.logits.grad_fn is None  # no graph was built
    assert relative_error(a.raw, b.raw) < TOL and (a.cams - b.cams).abs().max() < TOL
    fast.remove(), slow.remove()


def test_gradcam_on_a_head_that_is_not_gap_linear_uses_the_backward_pass() -> None:
    module = random_torchvision("convnext_tiny")
    explainer = livecam.Explainer(module, "gradcam")
    assert explainer._head_weight is None and explainer._autograd
    x = _batch(4, n=1)
    result = explainer(x)
    ref, _, _, _ = gradcam_reference(module, explainer.layer, x)
    assert relative_error(result.raw, ref) < TOL
