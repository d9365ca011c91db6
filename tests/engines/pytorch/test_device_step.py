"""The device-resident step: its math on the CPU against the OpenCV path, precisions, and CUDA graphs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import livecam
from livecam.engines.pytorch.device_step import DeviceStep, colormap_lut, overlay_frames, preprocess_frames
from livecam.engines.pytorch.engine import Engine
from livecam.render import COLORMAPS, blend, heatmap
from livecam.sources import Frame
from tests.conftest import photo_bgr

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("name", sorted(COLORMAPS))
def test_lookup_table_is_opencvs_colour_map(name: str) -> None:
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    assert np.array_equal(colormap_lut(name), cv2.applyColorMap(ramp, COLORMAPS[name])[:, 0])


def test_overlay_matches_the_opencv_blend() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    cam = rng.random((7, 7)).astype(np.float32)
    expected = blend(frame, heatmap(cam, (320, 180), "jet"), 0.4)
    got = overlay_frames(torch.from_numpy(frame)[None], torch.from_numpy(cam)[None],
                         torch.from_numpy(colormap_lut("jet")), 0.4)[0].numpy()
    # the OpenCV path quantizes the 7x7 map before upsampling, this one after: a level or two apart
    diff = np.abs(got.astype(int) - expected)
    assert got.dtype == np.uint8 and diff.mean() < 1.0 and np.percentile(diff, 99) <= 8


def test_device_preprocessing_is_close_to_the_opencv_one(lite0) -> None:
    spec = lite0.preprocess
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    for name in PHOTOS:
        frame = photo_bgr(name)
        x = preprocess_frames(torch.from_numpy(frame)[None], spec, mean, std, torch.float32, False)
        ref = livecam.to_input(frame, spec)
        assert x.shape == ref.shape and (x - ref).abs().mean() < 0.03


def test_device_step_equals_the_explainer_on_the_same_input(lite0) -> None:
    explainer = livecam.Explainer(lite0)
    step = DeviceStep(explainer, lite0.preprocess, "jet", 0.5, None, channels_last=False)
    frames = torch.from_numpy(np.stack([cv2.resize(photo_bgr(n), (320, 240)) for n in PHOTOS]))
    out = step(frames)
    x = preprocess_frames(frames, lite0.preprocess, step.mean, step.std, torch.float32, False)
    ref = explainer(x, upsample=False)
    assert torch.equal(out.classes, ref.classes)
    assert (out.cams - ref.cams).abs().max() < 1e-5
    assert (out.scores - ref.scores).abs().max() < 1e-6
    assert out.images.shape == frames.shape and out.images.dtype == torch.uint8
    explainer.remove()


def test_engine_on_the_device_path_agrees_with_the_opencv_path(lite0) -> None:
    device = Engine(lite0, renderer="device")
    opencv = Engine(lite0, renderer="opencv")
    for name in PHOTOS:
        frame = Frame(photo_bgr(name), 0, 0.0)
        a, b = device.process(frame), opencv.process(frame)
        assert int(a.explanation.classes[0]) == int(b.explanation.classes[0])
        assert (a.explanation.cams - b.explanation.cams).abs().max() < 0.1  # resampling differs, not the method
        assert a.image.shape == b.image.shape
        below_labels = (slice(120, None), slice(None))
        assert np.abs(a.image[below_labels].astype(int) - b.image[below_labels]).mean() < 6
        assert set(a.timings) == {"upload", "explain", "render"}
    device.close(), opencv.close()


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("fp16", 0.02), ("bf16", 0.1)])
def test_precisions_against_the_fp32_explainer(lite0, precision: str, tolerance: float) -> None:
    """The stated tolerances: the largest difference of a normalized 7x7 map on real photographs."""
    engine = Engine(lite0, precision=precision)
    assert engine.dtype == {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert next(lite0.module.parameters()).dtype == torch.float32  # the caller's model is untouched
    with livecam.Explainer(lite0) as reference:
        for name in PHOTOS:
            frame = photo_bgr(name)
            out = engine.process(Frame(frame, 0, 0.0))
            ref = reference(livecam.to_input(frame, lite0.preprocess), upsample=False)
            assert int(out.explanation.classes[0]) == int(ref.classes[0])
            assert out.explanation.cams.dtype == torch.float32
            assert (out.explanation.cams - ref.cams).abs().max() < tolerance
    engine.close()


@cuda
def test_cuda_graph_replay_equals_eager_and_memory_is_steady() -> None:
    model = livecam.load_model(device="cuda")
    graphed = Engine(model, precision="fp16")
    eager = Engine(model, precision="fp16", graph=False)
    frames = [cv2.resize(photo_bgr(n), (1280, 720)) for n in PHOTOS]
    for i, image in enumerate(frames):
        a = graphed.process(Frame(image, i, 0.0))
        b = eager.process(Frame(image, i, 0.0))
        assert int(a.explanation.classes[0]) == int(b.explanation.classes[0])
        assert (a.explanation.cams - b.explanation.cams).abs().max() < 1e-3
        assert np.abs(a.image.astype(int) - b.image).max() <= 2
    assert any(g is not None for g in graphed.device_step._graphs.values()), "the step was not captured"
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for i in range(200):
        graphed.process(Frame(frames[i % len(frames)], i, 0.0))
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + 1_000_000
