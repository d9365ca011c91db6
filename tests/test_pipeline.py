"""The loop (livecam.pipeline.run): max frames, sinks that stop it, batches, live drops, stopping, source errors;
and its errors: a bad on_error, ModelError as a RunError carrying the report."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from livecam import errors
from livecam.engines.pytorch.engine import Engine
from livecam.errors import LivecamError, RunError
from livecam.pipeline import ModelError, RunReport, run
from livecam.sinks import Sink, VideoFileSink
from livecam.sources import Frame
from tests.conftest import read_video


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


def test_an_unknown_on_error_is_a_livecam_error(lite0) -> None:
    engine = Engine(lite0, "gradcam")
    with pytest.raises(LivecamError, match="on_error must be one of stop, skip, not 'retry'"):
        run(_frames(1), engine, [], on_error="retry")
    engine.close()


def test_a_model_failure_is_a_run_error_that_carries_the_report(lite0) -> None:
    class Failing(Engine):
        def process_batch(self, frames, readout=None):  # noqa: ANN001, ANN201 - the engine's own signature
            if any(f.index == 2 for f in frames):
                raise RuntimeError("out of memory")
            return super().process_batch(frames, readout)

    with Failing(lite0, "gradcam") as engine, pytest.raises(ModelError) as caught:
        run(_frames(5), engine, [])
    error = caught.value
    assert isinstance(error, RunError) and error.exit_code == 1
    assert isinstance(error.report, RunReport) and error.report.frames == 2
    assert str(error) == error.report.error == "the model failed on frame 2 (0.20 s): RuntimeError: out of memory"
    assert ModelError is errors.ModelError  # the CLI imports it from the pipeline
