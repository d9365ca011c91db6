"""Guided Backpropagation and Guided Grad-CAM against hand-computed and float64 references."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import livecam
from livecam.cams.guided import guided_backprop
from tests.conftest import TOL, capture64, photo_bgr, random_torchvision, relative_error

# A two-layer network worked by hand: x (3) -> W1 (4x3) -> activation -> W2 (2x4).
# Pre-activations for x = [4, -1, 3] are [7, 2, 2, -1]; class 0's row of W2 is [2, -1, 5, 3],
# so the gradient arriving at the hidden units is [2, -1, 5, 3].
W1 = torch.tensor([[1.0, 0, 1], [0, 1, 1], [1, 2, 0], [0, 1, 0]])
W2 = torch.tensor([[2.0, -1, 5, 3], [1, 1, 1, 1]])
X = torch.tensor([[4.0, -1, 3]])
# Guided ReLU passes unit 0 (f > 0, R > 0) and unit 2; unit 1 has R < 0, unit 3 has f < 0:
# 2 * W1[0] + 5 * W1[2] = [7, 10, 2]. (Plain backprop also lets unit 1's -1 through: [7, 9, 1].)
GUIDED_RELU = torch.tensor([[7.0, 10, 2]])
# ReLU6 also stops unit 0, whose pre-activation 7 is above 6: 5 * W1[2] = [5, 10, 0].
GUIDED_RELU6 = torch.tensor([[5.0, 10, 0]])


class TwoLayer(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False)
        self.fc1.weight.data, self.fc2.weight.data = W1.clone(), W2.clone()
        self.kind = kind
        self.act = nn.ReLU6() if kind == "relu6_module" else nn.ReLU(inplace=kind == "inplace_module")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.kind in ("module", "inplace_module", "relu6_module"):
            h = self.act(h)
        elif self.kind == "functional":
            h = F.relu(h)
        elif self.kind == "functional_inplace":
            F.relu(h, inplace=True)  # the result is not used: the tensor itself must change
        elif self.kind == "tensor_method":
            h = h.relu()
        elif self.kind == "torch_inplace":
            torch.relu_(h)
        elif self.kind == "relu6_functional":
            h = F.relu6(h)
        elif self.kind == "hardtanh":
            h = F.hardtanh(h, 0.0, 6.0)
        return self.fc2(h)


@pytest.mark.parametrize("kind", ["module", "inplace_module", "functional", "functional_inplace", "tensor_method",
                                  "torch_inplace", "relu6_module", "relu6_functional", "hardtanh"])
def test_guided_backprop_on_a_two_layer_network_worked_by_hand(kind: str) -> None:
    model = TwoLayer(kind).eval().requires_grad_(False)
    expected = GUIDED_RELU6 if "relu6" in kind or kind == "hardtanh" else GUIDED_RELU
    guided = guided_backprop(model, X, torch.tensor([0]))
    assert torch.equal(guided, expected)
    with torch.no_grad():  # the forward pass itself is unchanged
        plain = model(X.clone())
    assert torch.equal(plain[0], W2 @ (W1 @ X[0]).clamp(0, 6 if expected is GUIDED_RELU6 else None))
    x = X.clone().requires_grad_(True)
    model(x)[0, 0].backward()
    assert not torch.equal(x.grad, expected)  # ordinary backprop differs, so the test can tell them apart
    assert all(p.grad is None for p in model.parameters())


def guided64(module: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The guided gradient in float64, by clamping each ReLU/ReLU6 module's input gradient at 0."""
    ref = copy.deepcopy(module).double().eval()
    for m in ref.modules():
        if isinstance(m, nn.ReLU | nn.ReLU6):
            m.inplace = False
            m.register_full_backward_hook(lambda _m, grad_in, _grad_out: (grad_in[0].clamp(min=0),))
    inputs = x.double().requires_grad_(True)
    logits = ref(inputs)
    (g,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), inputs)
    return g


def _cases(lite0):
    torch.manual_seed(5)
    photos = livecam.to_input([photo_bgr("chelsea"), photo_bgr("astronaut")], lite0.preprocess)
    return {
        "efficientnet_lite0": (lite0.module, photos),  # ReLU6 modules (hardtanh)
        "resnet18": (random_torchvision("resnet18"), torch.randn(2, 3, 64, 64)),  # in-place ReLU modules
        "mobilenet_v2": (random_torchvision("mobilenet_v2"), torch.randn(2, 3, 64, 64)),
    }


def test_guided_and_guided_gradcam_match_float64_references(lite0) -> None:
    for name, (module, x) in _cases(lite0).items():
        with livecam.Explainer(module, "guided", input_size=tuple(x.shape[-2:])) as explainer:
            result = explainer(x)
        g = guided64(module, x, result.classes)
        assert result.detail.shape == x.shape
        assert relative_error(result.detail, g) < TOL, name
        assert relative_error(result.raw, g.abs().amax(1)) < TOL, name
        with livecam.Explainer(module, "guidedgradcam", input_size=tuple(x.shape[-2:])) as explainer:
            combined = explainer(x)
        a, grads = capture64(module, explainer.layer, x)
        cam = torch.clamp((grads.mean(dim=(2, 3), keepdim=True) * a).sum(1), min=0)
        lo, hi = cam.amin(dim=(1, 2), keepdim=True), cam.amax(dim=(1, 2), keepdim=True)
        up = F.interpolate(((cam - lo) / (hi - lo))[:, None], size=x.shape[-2:], mode="bilinear",
                           align_corners=False)
        assert relative_error(combined.detail, g * up) < TOL, name
        assert all(p.grad is None for p in module.parameters())
