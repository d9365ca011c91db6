"""The PyTorch engine: its per-frame step, a fixed class, the hooks over many frames, the GPU."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import Engine, to_input, top_labels
from livecam.render import panels_image
from livecam.sources import Frame
from tests.conftest import SPLICE, assert_smoothed, spliced_clip


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


# --- --smooth

def _probs(out) -> np.ndarray:  # noqa: ANN001 - the frame's own class probabilities
    return torch.softmax(out.explanation.logits[out.index].float(), dim=0).numpy()


@pytest.mark.usefixtures("one_torch_thread")
def test_smooth_zero_draws_each_frame_as_explained(lite0) -> None:
    with Engine(lite0, smooth=0.0) as engine:
        for frame in spliced_clip()[SPLICE - 1:SPLICE + 1]:
            out = engine.process(frame)
            e = out.explanation
            assert not out.smoothed and out.raw_maps is out.maps and out.raw_labels is out.labels
            assert np.array_equal(out.maps, e.cams.numpy()) and out.map_classes == [int(e.classes[0])]
            assert out.labels == top_labels(e, lite0.class_names, 3)
            assert np.array_equal(out.image, engine.render(frame, e, 0, labels=out.labels))


@pytest.mark.usefixtures("one_torch_thread")
def test_smoothing_restarts_at_a_cut_and_steadies_a_shot(lite0) -> None:
    with Engine(lite0, smooth=0.5) as engine:
        frames = spliced_clip()
        outs = engine.process_batch(frames[:3]) + [engine.process(frame) for frame in frames[3:]]
        assert_smoothed(outs, _probs, 0.5, lite0.class_names, 3)
        for out in outs[1:SPLICE] + outs[SPLICE + 1:]:  # within a shot: smoothed
            assert np.abs(out.maps - out.raw_maps).max() > 1e-3
        for out in outs:  # what is drawn is the smoothed map and labels
            assert np.array_equal(out.image, engine.annotator.annotate(out.frame.image, out.maps[0], out.labels))
            assert out.raw_labels == top_labels(out.explanation, lite0.class_names, 3, out.index)
        engine.smooth_s = 0
        off = engine.process(frames[-1])
        assert not off.smoothed and np.array_equal(off.maps, off.explanation.cams.numpy())


@pytest.mark.usefixtures("one_torch_thread")
def test_smoothing_panels_and_a_fixed_class(lite0) -> None:
    frames = spliced_clip()
    with Engine(lite0, topk=3, panels=True, smooth=0.5) as engine:
        outs = [engine.process(frame) for frame in frames]
        assert_smoothed(outs, _probs, 0.5, lite0.class_names, 3, panels=True)
        for out in outs:
            assert out.maps.shape == (3, 7, 7)
            names = [lite0.class_names[c] for c in out.map_classes]
            scores = [x.score for c in out.map_classes for x in out.labels if x.index == c]
            assert np.array_equal(out.image, panels_image(engine.annotator, out.frame.image, out.maps, names, scores))
    with Engine(lite0, target_class=967, smooth=0.5) as engine:  # espresso, in the cat's shot too
        outs = [engine.process(frame) for frame in frames]
        assert all(out.map_classes == out.raw_map_classes == [967] for out in outs)
        assert_smoothed(outs, _probs, 0.5, lite0.class_names, 3)


@pytest.mark.usefixtures("one_torch_thread")
def test_smoothing_the_guided_view_smooths_the_overlay_not_the_detail(lite0) -> None:
    frames = spliced_clip()[:2]
    with Engine(lite0, view="guided", smooth=0.5) as smooth, Engine(lite0, view="guided") as plain:
        for frame in frames:
            a, b = smooth.process(frame), plain.process(frame)
            half = a.image.shape[1] // 2
            assert np.array_equal(a.raw_maps, b.maps)
            assert np.array_equal(a.image[:, half:], b.image[:, half:])  # the detail map: the frame's own
            assert np.array_equal(a.image[:, :half], b.image[:, :half]) == (frame.index == 0)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_device_renderer_cannot_smooth(lite0) -> None:
    with pytest.raises(livecam.LivecamError, match="device renderer cannot smooth") as caught:
        Engine(lite0, renderer="device", smooth=0.5)
    assert "\n" not in str(caught.value)
    with Engine(lite0, renderer="device") as engine:
        assert engine.device_step is not None
        with pytest.raises(livecam.LivecamError, match="device renderer cannot smooth"):
            engine.smooth_s = 0.5
        assert engine.smooth_s == 0.0
    with pytest.raises(livecam.LivecamError, match="smooth"):
        Engine(lite0, smooth=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_smoothing_on_the_gpu_draws_on_the_host() -> None:
    model = livecam.load_model(device="cuda")
    frames = spliced_clip()
    with Engine(model, smooth=0.5) as engine:
        assert engine.device_step is None  # auto: the OpenCV renderer, which can smooth
        outs = [engine.process(frame) for frame in frames]
        assert all(np.abs(out.maps - out.raw_maps).max() > 1e-3 for out in outs[1:SPLICE])
    with Engine(model) as engine:  # the device renderer while smoothing is off; the host's while it is on
        assert engine.device_step is not None
        assert not engine.process(frames[0]).smoothed
        engine.smooth_s = 0.5
        first, second = engine.process(frames[0]), engine.process(frames[1])
        assert first.smoothed and np.array_equal(first.maps, first.raw_maps)
        assert np.abs(second.maps - second.raw_maps).max() > 1e-3
