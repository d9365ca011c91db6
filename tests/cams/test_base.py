"""What every method shares: the hook (in-place ops downstream, no parameter gradient) and normalization."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import livecam
from livecam.cams import normalize_maps
from tests.conftest import InplaceHead, gradcam_reference, random_batch, relative_error

TOL = 1e-5


def test_inplace_ops_after_the_target_layer_do_not_change_the_map() -> None:
    torch.manual_seed(3)
    model = InplaceHead().eval()
    x = random_batch(2, size=32)
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
    result = explainer(random_batch(0, size=16))
    assert torch.isfinite(result.cams).all()
    assert (result.cams == 0).all()


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
    result = livecam.Explainer(lite0)(random_batch(0, n=1))
    assert all(p.grad is None and not p.requires_grad for p in lite0.module.parameters())
    for t in (result.cams, result.raw, result.logits, result.classes, result.scores):
        assert t.device == lite0.device
