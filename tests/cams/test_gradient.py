"""Grad-CAM, counterfactual Grad-CAM and Finer-CAM against references written from the papers' formulas: the closed
form, the backward pass, the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import livecam
from livecam.cams.gradient import finer_contrast
from livecam.engines.pytorch.engine import to_input
from tests.conftest import (
    capture64,
    forward64,
    gradcam_reference,
    normalize_reference,
    pearson,
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


# --- counterfactual Grad-CAM and Finer-CAM

def finercam_reference(a: torch.Tensor, logits: torch.Tensor, classes: torch.Tensor, references: int = 3):
    """Finer-CAM from the paper's target, in float64 with autograd (A and the logits from :func:`forward64`),
    written independently of livecam.

    The references j are the classes whose logits lie nearest y^c (ranks 1 to 3 of |y^j - y^c|, the authors'
    default), weighted by their softmax probabilities, normalized: s = sum_j p_j (y^c - y^j) / sum_j p_j, with the
    weights held constant; alpha_k = mean_ij d s / d A^k_ij, L = ReLU(sum_k alpha_k A^k).
    """
    probs = torch.softmax(logits.detach(), dim=1)
    score = torch.zeros((), dtype=torch.float64)
    for i, c in enumerate(classes.tolist()):
        row = logits.detach()[i].numpy()
        order = [j for j in np.argsort(np.abs(row - row[c]), kind="stable") if j != c][:references]
        p = probs[i, order]
        score = score + (p * (logits[i, c] - logits[i, order])).sum() / p.sum()
    (grads,) = torch.autograd.grad(score, a, retain_graph=True)
    return torch.relu((grads.mean(dim=(2, 3), keepdim=True) * a).sum(1)).detach()


@pytest.mark.usefixtures("one_torch_thread")
def test_finercam_matches_its_reference_on_the_real_model(lite0) -> None:
    """Top-1, fixed classes (tiger cat for chelsea is not its top-1: its references lie above and below it) and
    top-3, on the closed form and on the backward pass."""
    x = to_input([photo_bgr("chelsea"), photo_bgr("coffee")], lite0.preprocess)
    a, logits = forward64(lite0.module, "_head_act", x)
    top = logits.detach().topk(3, dim=1).indices
    fixed = torch.tensor([282, 504])  # tiger cat, coffee mug
    refs = {"top1": finercam_reference(a, logits, top[:, 0]), "fixed": finercam_reference(a, logits, fixed)}
    ranked = [finercam_reference(a, logits, top[:, j]) for j in range(3)]
    refs["top3"] = torch.stack(ranked, dim=1).reshape(6, *a.shape[2:])  # sample i's j-th class at row 3 i + j
    for gradients in ("auto", "autograd"):
        with livecam.Explainer(lite0, "finercam", gradients=gradients) as explainer:
            results = {"top1": explainer(x, upsample=False), "fixed": explainer(x, classes=fixed, upsample=False),
                       "top3": explainer(x, topk=3, upsample=False)}
        assert torch.equal(results["top3"].classes, top.reshape(-1))
        for key, result in results.items():
            assert relative_error(result.raw, refs[key]) < TOL, (gradients, key)


def test_finercam_differs_from_gradcam(lite0) -> None:
    """Subtracting the look-alikes' evidence changes the map: it is not Grad-CAM renamed, nor blank."""
    x = to_input(photo_bgr("chelsea"), lite0.preprocess)
    with livecam.Explainer(lite0, "finercam") as finer, livecam.Explainer(lite0, "gradcam") as grad:
        f, g = finer(x, upsample=False), grad(x, upsample=False)
    assert f.classes.equal(g.classes)
    assert (f.cams - g.cams).abs().max() > 0.1
    assert f.cams.max() == 1.0


def test_finer_contrast_is_the_class_minus_its_nearest_classes() -> None:
    """By hand: logits (5, 4, 1, 9, 3), class 1 (logit 4): its nearest are classes 0 and 4 (1 away) and 2 (3 away)."""
    logits = torch.tensor([[5.0, 4.0, 1.0, 9.0, 3.0]])
    contrast = finer_contrast(logits, torch.tensor([1]))
    q = torch.softmax(torch.tensor([5.0, 1.0, 3.0]), dim=0)  # classes 0, 2, 4: distances 1, 3, 1
    expected = torch.tensor([[-q[0], 1.0, -q[1], 0.0, -q[2]]])
    assert torch.allclose(contrast, expected, atol=1e-7)
    assert torch.equal(finer_contrast(logits[:, :1], torch.tensor([0])), torch.ones(1, 1))  # one class: itself
    two = finer_contrast(logits[:, :2], torch.tensor([0]))  # fewer classes than references: all the others
    assert torch.allclose(two, torch.tensor([[1.0, -1.0]]))


@pytest.mark.usefixtures("one_torch_thread")
def test_counterfactual_is_negatively_correlated_with_gradcams_map_on_chelsea(lite0) -> None:
    """Selvaraju et al. 2017, section 3.3: the negated gradients give the evidence against the top class (tabby).

    At the head's own map every cell of chelsea adds to the cat (Grad-CAM's map before its ReLU is positive
    everywhere), so the counterfactual map is blank there; at _blocks.10 (14x14, through the backward pass) a
    part of the picture speaks against it, and that part is the counterfactual map.
    """
    x = to_input(photo_bgr("chelsea"), lite0.preprocess)
    for layer in ("_head_act", "_blocks.10"):
        a, g = capture64(lite0.module, layer, x)
        signed = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1)  # Grad-CAM's map before its ReLU
        with livecam.Explainer(lite0, "counterfactual", layer=layer) as explainer:
            result = explainer(x)
        assert relative_error(result.raw, torch.relu(-signed)) < TOL, layer
        if layer == "_head_act":
            assert signed.min() > 0 and result.raw.max() == 0 and result.cams.max() == 0
        else:
            assert 0.2 < float((signed < 0).double().mean()) < 0.8
            assert pearson(result.raw, signed)[0] < -0.7
