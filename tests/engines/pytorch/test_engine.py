"""The PyTorch engine: its per-frame step, a fixed class, the hooks over many frames, the GPU."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import Engine, to_input, top_labels
from livecam.sources import Frame


def test_to_input_matches_the_usual_imagenet_preprocessing(lite0, chelsea_bgr) -> None:
    x = to_input(chelsea_bgr, lite0.preprocess)
    rgb = cv2.resize(chelsea_bgr, (224, 224), interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float64) / 255.0
    ref = (rgb - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert np.abs(x[0].permute(1, 2, 0).numpy() - ref).max() < 1e-5
    batch = to_input([chelsea_bgr, chelsea_bgr[:100]], lite0.preprocess)
    assert batch.shape == (2, 3, 224, 224) and torch.equal(batch[0], x[0])
    cl = to_input(chelsea_bgr, lite0.preprocess, channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, x)


def test_large_frames_are_halved_first_and_barely_differ(chelsea_bgr) -> None:
    from livecam.engines.pytorch.engine import downscale

    big = cv2.resize(chelsea_bgr, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    fast = downscale(big, (224, 224)).astype(float)
    direct = cv2.resize(big, (224, 224), interpolation=cv2.INTER_AREA).astype(float)
    assert fast.shape == direct.shape
    assert np.abs(fast - direct).mean() < 1.0 and np.abs(fast - direct).max() < 24


def test_engine_process_annotates_the_frame_and_matches_the_explainer(lite0, chelsea_bgr) -> None:
    engine = Engine(lite0, "gradcam", topk=3)
    out = engine.process(Frame(chelsea_bgr, 0, 0.0), readout="12.0 FPS  80 ms")
    with livecam.Explainer(lite0) as explainer:
        ref = explainer(to_input(chelsea_bgr, lite0.preprocess), upsample=False)
    assert out.image.shape == chelsea_bgr.shape and out.image.dtype == np.uint8
    assert torch.allclose(out.explanation.cams, ref.cams, atol=1e-5)  # the engine runs ONNX Runtime here
    assert set(out.timings) == {"preprocess", "explain", "render"}
    assert np.abs(out.image.astype(int) - chelsea_bgr).mean() > 10
    engine.close()


def test_fixed_class_is_explained_and_labelled(lite0, coffee_bgr) -> None:
    engine = Engine(lite0, "cam", target_class=504, topk=1)  # 'coffee mug', not the top class
    out = engine.process(Frame(coffee_bgr, 0, 0.0))
    assert int(out.explanation.classes[0]) == 504
    labels = top_labels(out.explanation, lite0.class_names, 1)
    assert [label.name for label in labels] == ["espresso", "coffee mug"]
    assert [label.explained for label in labels] == [False, True]
    engine.close()


def test_engine_refuses_a_class_out_of_range(lite0) -> None:
    with pytest.raises(livecam.LivecamError, match="class index 1000 is out of range"):
        Engine(lite0, target_class=1000, renderer="device")


def _hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


@pytest.mark.parametrize("gradients", ["auto", "autograd"])
def test_hooks_are_registered_once_and_no_gradient_accumulates(lite0, gradients: str) -> None:
    engine = Engine(lite0, "gradcam", channels_last=False, precision="fp32", fold_bn=False)
    assert engine.model is lite0  # fp32, the default layout and no folding: no copy
    engine.explainer.remove()
    before = _hook_count(lite0.module)
    engine.explainer = livecam.Explainer(lite0, "gradcam", gradients=gradients)
    assert _hook_count(lite0.module) == before + 1
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    for i in range(500):
        engine.process(Frame(np.roll(base, i, axis=1), i, i / 30))
        if i in (0, 499):
            assert _hook_count(lite0.module) == before + 1
    assert all(p.grad is None for p in lite0.module.parameters())
    engine.close()
    assert _hook_count(lite0.module) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_on_gpu(chelsea_bgr) -> None:
    model = livecam.load_model(device="cuda")
    out = Engine(model).process(Frame(chelsea_bgr, 0, 0.0))
    assert out.explanation.cams.is_cuda and out.image.shape == chelsea_bgr.shape
