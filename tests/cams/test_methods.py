"""The CAM family against float64 references written here from each paper's formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import livecam
from tests.conftest import TOL, InplaceHead, capture64, photo_bgr, random_torchvision, relative_error


def ref_gradcampp(a, g):
    n, k, h, w = a.shape
    out = torch.zeros(n, h, w, dtype=torch.float64)
    for s in range(n):
        weights = torch.zeros(k, dtype=torch.float64)
        for c in range(k):
            num = g[s, c] ** 2
            den = 2 * g[s, c] ** 2 + a[s, c].sum() * g[s, c] ** 3
            alpha = torch.where(den != 0, num / torch.where(den != 0, den, 1.0), 0.0)
            weights[c] = (alpha * torch.clamp(g[s, c], min=0)).sum()
        out[s] = torch.clamp((weights[:, None, None] * a[s]).sum(0), min=0)
    return out


def ref_xgradcam(a, g):
    total = a.sum(dim=(2, 3), keepdim=True)
    alpha = torch.where(total != 0, (a * g).sum(dim=(2, 3), keepdim=True) / torch.where(total != 0, total, 1.0), 0.0)
    return torch.clamp((alpha * a).sum(1), min=0)


def ref_layercam(a, g):
    return torch.clamp((torch.clamp(g, min=0) * a).sum(1), min=0)


def ref_hirescam(a, g):
    return torch.clamp((g * a).sum(1), min=0)


def ref_counterfactual(a, g):
    """Selvaraju et al. 2017, section 3.3: Grad-CAM with the gradient negated."""
    return torch.clamp((-g.mean(dim=(2, 3), keepdim=True) * a).sum(1), min=0)


def ref_eigencam(a, _g):
    n, k, h, w = a.shape
    out = []
    for s in range(n):
        x = a[s].reshape(k, h * w).T
        x = x - x.mean(0)
        u, sv, _ = torch.linalg.svd(x, full_matrices=False)
        proj = u[:, 0] * sv[0]
        mean_act = a[s].mean(0).reshape(-1)
        if torch.dot(proj, mean_act - mean_act.mean()) < 0:
            proj = -proj
        out.append(proj.reshape(h, w))
    return torch.stack(out)


REFERENCES = {
    "gradcampp": ref_gradcampp,
    "xgradcam": ref_xgradcam,
    "layercam": ref_layercam,
    "hirescam": ref_hirescam,
    "counterfactual": ref_counterfactual,
    "eigencam": ref_eigencam,
}


def _models(lite0):
    torch.manual_seed(3)
    return {
        "resnet18": (random_torchvision("resnet18"), (224, 224)),  # in-place ReLUs inside the blocks
        "mobilenet_v2": (random_torchvision("mobilenet_v2"), (224, 224)),
        "inplace_head": (InplaceHead().eval(), (32, 32)),  # an in-place ReLU after the target layer
        "efficientnet_lite0": (lite0, (224, 224)),
    }


@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_each_method_matches_its_paper(method: str, lite0) -> None:
    for name, (model, size) in _models(lite0).items():
        explainer = livecam.Explainer(model, method, input_size=size)
        module = model.module if isinstance(model, livecam.LoadedModel) else model
        if name == "efficientnet_lite0":
            x = livecam.to_input([photo_bgr("chelsea"), photo_bgr("coffee")], lite0.preprocess)
        else:
            x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(7))
        result = explainer(x)
        a, g = capture64(module, explainer.layer, x)
        assert relative_error(result.raw, REFERENCES[method](a, g)) < TOL, name
        explainer.remove()


@pytest.mark.parametrize("method", ["gradcampp", "xgradcam", "layercam", "hirescam", "counterfactual", "finercam"])
def test_closed_form_and_backward_agree_for_every_gradient_method(method: str, lite0) -> None:
    x = livecam.to_input(photo_bgr("astronaut"), lite0.preprocess)
    fast = livecam.Explainer(lite0, method)
    slow = livecam.Explainer(lite0, method, gradients="autograd")
    assert relative_error(fast(x).raw, slow(x).raw) < TOL
    fast.remove(), slow.remove()


def test_gradient_free_methods_build_no_graph(lite0) -> None:
    with livecam.Explainer(lite0, "eigencam") as explainer:
        result = explainer(livecam.to_input(photo_bgr("rocket"), lite0.preprocess))
    assert result.logits.grad_fn is None and not result.raw.requires_grad


_GAP_MODELS: dict[str, torch.nn.Module] = {}


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["resnet18", "mobilenet_v2"]), st.integers(0, 2**31 - 1))
def test_gap_linear_heads_make_cam_gradcam_hirescam_xgradcam_one_map(name: str, seed: int) -> None:
    """Property: for GAP -> Linear heads the four give the same normalized map, on any input."""
    if name not in _GAP_MODELS:
        _GAP_MODELS[name] = random_torchvision(name)
    model = _GAP_MODELS[name]
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    maps = []
    for method in ("cam", "gradcam", "hirescam", "xgradcam"):
        with livecam.Explainer(model, method, gradients="autograd" if seed % 2 else "auto") as explainer:
            maps.append(explainer(x, upsample=False).cams)
    for other in maps[1:]:
        assert (other - maps[0]).abs().max() < TOL


def test_layercam_works_on_an_early_layer(lite0) -> None:
    x = livecam.to_input(photo_bgr("coffee"), lite0.preprocess)
    with livecam.Explainer(lite0, "layercam", layer="_blocks.4") as explainer:
        result = explainer(x)
    a, g = capture64(lite0.module, "_blocks.4", x)
    assert result.raw.shape[-2:] == (28, 28)
    assert relative_error(result.raw, ref_layercam(a, g)) < TOL
    assert F.relu(result.raw).equal(result.raw)
