"""The per-frame step, the loop, and the hooks over many frames."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import livecam
from livecam.engines.pytorch.engine import Engine, to_input, top_labels
from livecam.pipeline import run
from livecam.sinks import Sink, VideoFileSink
from livecam.sources import Frame
from tests.conftest import read_video


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


class _StopAfter(Sink):
    """A sink that asks to stop after n frames, like q in the window."""

    main_thread = True

    def __init__(self, n: int) -> None:
        self.n, self.seen, self.stop_requested = n, 0, False

    def write(self, _annotated) -> None:
        self.seen += 1
        self.stop_requested = self.seen >= self.n


def _frames(n: int, fail_at: int | None = None, delay: float = 0.0):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("the camera fell off")
        time.sleep(delay)
        yield Frame(np.full((48, 64, 3), 40 * (i % 6), np.uint8), i, i / 10)


def test_run_stops_at_max_frames_and_when_a_sink_asks(lite0) -> None:
    engine = Engine(lite0)
    report = run(_frames(10), engine, [], max_frames=4)
    assert report.frames == 4 and not report.interrupted
    stopper = _StopAfter(3)
    report = run(_frames(10), engine, [stopper])
    assert report.frames == 3 and report.stopped_by_user
    assert len(report.stage_times["explain"]) == 3 and report.fps > 0
    engine.close()


def test_files_lose_no_frame_in_batches(lite0, tmp_path: Path) -> None:
    engine = Engine(lite0)
    seen: list[int] = []
    path = tmp_path / "batched.mp4"
    with VideoFileSink(path, fps=10.0) as sink:
        report = run(_frames(11), engine, [sink], batch=4, live=False, on_frame=lambda a: seen.append(a.frame.index))
    assert seen == list(range(11)) and report.frames == 11 and report.dropped == 0
    assert len(read_video(path)[0]) == 11
    # a batch of 4 gives the same maps as one frame at a time
    frames = list(_frames(4))
    batched = engine.process_batch(frames)
    for frame, out in zip(frames, batched, strict=True):
        single = engine.process(frame)
        assert torch.allclose(out.explanation.cams[out.index], single.explanation.cams[0], atol=1e-5)
        assert np.abs(out.image.astype(int) - single.image).max() <= 1
    engine.close()


def test_live_sources_drop_stale_frames(lite0) -> None:
    engine = Engine(lite0)
    seen: list[int] = []
    # a "camera" at 500 frames per second, far faster than the engine
    report = run(_frames(300, delay=0.002), engine, [], live=True, on_frame=lambda a: seen.append(a.frame.index))
    assert report.dropped > 0 and report.frames + report.dropped == 300
    assert seen == sorted(seen) and seen[-1] == 299  # always the newest, and the last one is shown
    engine.close()


def test_stop_keeps_a_complete_recording(lite0, tmp_path: Path) -> None:
    engine = Engine(lite0)
    path = tmp_path / "interrupted.mp4"
    stop = threading.Event()

    def on_frame(annotated) -> None:
        if annotated.frame.index == 6:
            stop.set()  # what the CLI's Ctrl-C handler does

    with VideoFileSink(path, fps=10.0) as sink:
        report = run(_frames(20), engine, [sink], stop=stop, on_frame=on_frame)
    assert report.interrupted and report.frames == 7
    frames, _ = read_video(path)
    assert len(frames) == 7
    engine.close()


def test_source_errors_reach_the_caller_and_the_recording_is_kept(lite0, tmp_path: Path) -> None:
    engine = Engine(lite0)
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="camera fell off"), VideoFileSink(path, fps=10.0) as sink:
        run(_frames(20, fail_at=5), engine, [sink])
    assert len(read_video(path)[0]) == 5
    engine.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_on_gpu(chelsea_bgr) -> None:
    model = livecam.load_model(device="cuda")
    out = Engine(model).process(Frame(chelsea_bgr, 0, 0.0))
    assert out.explanation.cams.is_cuda and out.image.shape == chelsea_bgr.shape
