"""The Explainer's side of the methods: scores, the classes and inputs it refuses, a named layer, one frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import to_input
from tests.conftest import gradcam_reference, photo_bgr, random_batch, random_torchvision, relative_error

TOL = 1e-5


def test_scores_are_softmax_probabilities_of_the_explained_class(lite0) -> None:
    x = to_input(photo_bgr("coffee"), lite0.preprocess)
    with livecam.Explainer(lite0) as explainer:
        result = explainer(x, classes=504)  # coffee mug, not the top class
    probs = torch.softmax(result.logits.double(), dim=1)
    assert int(result.classes[0]) == 504
    assert abs(float(result.scores[0]) - float(probs[0, 504])) < 1e-6


def test_explainer_rejects_bad_classes_and_inputs(lite0) -> None:
    explainer = livecam.Explainer(lite0)
    x = random_batch(0, n=2)
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
    x = random_batch(5, n=1)
    result = explainer(x)
    ref, _, _, _ = gradcam_reference(module, "layer3", x)
    assert result.raw.shape[-2:] == (14, 14)
    assert relative_error(result.raw, ref) < TOL
    with pytest.raises(livecam.LivecamError, match="no layer 'layer5'.*layer"):
        livecam.Explainer(module, "gradcam", layer="layer5")
    with pytest.raises(livecam.LivecamError, match="outputs \\(1, 1000\\), which has no spatial layout: 2 dimensions"):
        livecam.Explainer(module, "gradcam", layer="fc")


def test_explain_frame_gives_maps_at_the_frame_size(lite0, chelsea_bgr) -> None:
    with livecam.Explainer(lite0) as explainer:
        result = livecam.explain_frame(chelsea_bgr, explainer)
    assert result.cams.shape == (1, *chelsea_bgr.shape[:2])
    assert float(result.cams.max()) == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(result.cams.numpy()).all()
