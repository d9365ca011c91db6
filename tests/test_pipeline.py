"""The loop (livecam.pipeline.run): max frames, sinks that stop it, batches, live drops, stopping, source errors;
its errors: a bad on_error, ModelError as a RunError carrying the report; paced playback and the speed readout."""

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
from livecam.pipeline import ModelError, Readout, RunReport, default_pace, run
from livecam.sinks import Sink, VideoFileSink
from livecam.sources import Frame, open_source
from livecam.types import Speed
from tests.conftest import PACED_FPS, InstantEngine, read_video, small_clip


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


# -- paced playback ------------------------------------------------------------------------------------------------


class _Watcher(Sink):
    """A window-like sink (on the main thread) that notes when each frame reached it."""

    main_thread = True

    def __init__(self) -> None:
        self.shown: list[tuple[float, float, int]] = []  # (time.perf_counter(), timestamp, index)

    def write(self, annotated) -> None:
        self.shown.append((time.perf_counter(), annotated.frame.timestamp, annotated.frame.index))


def test_pacing_is_for_watched_files_that_are_not_recorded() -> None:
    assert default_pace(live=False, watched=True, recorded=False)
    assert not default_pace(live=False, watched=True, recorded=True)  # a recording goes as fast as it can
    assert not default_pace(live=False, watched=False, recorded=False)  # nothing to watch (a log, say)
    assert not default_pace(live=True, watched=True, recorded=False)  # real time already


@pytest.mark.parametrize("batch", [1, 4])
def test_a_paced_file_plays_in_its_own_duration_and_no_frame_early(tmp_path: Path, batch: int) -> None:
    clip = small_clip(tmp_path / "two_seconds.mp4", 2.0)
    watcher = _Watcher()
    with open_source(str(clip)) as src:
        started = time.perf_counter()
        report = run(src, InstantEngine(), [watcher], batch=batch, pace=True)
        wall = time.perf_counter() - started
    duration = 48 / PACED_FPS  # the last frame shows for its 1/24 s too, as in a player
    assert report.frames == 48 and [index for *_, index in watcher.shown] == list(range(48))
    assert 0.9 * duration <= wall <= 1.1 * duration, wall
    first_at, first_time, _ = watcher.shown[0]
    early = [(index, at - first_at, ts - first_time) for at, ts, index in watcher.shown
             if at - first_at < ts - first_time - 0.005]
    assert not early, early  # each frame at its time after the first, or later
    assert report.fps == pytest.approx(PACED_FPS, rel=0.1)


def test_an_unpaced_recording_is_not_slowed(tmp_path: Path) -> None:
    clip = small_clip(tmp_path / "four_seconds.mp4", 4.0)
    out = tmp_path / "out.mp4"
    with open_source(str(clip)) as src, VideoFileSink(out, fps=PACED_FPS) as sink:
        started = time.perf_counter()
        report = run(src, InstantEngine(), [sink, _Watcher()])
        wall = time.perf_counter() - started
    assert report.frames == 96 and len(read_video(out)[0]) == 96
    assert wall < 0.5 * 96 / PACED_FPS, wall


def test_live_sources_are_never_paced() -> None:
    frames = [Frame(np.zeros((48, 64, 3), np.uint8), i, 100.0 * i) for i in range(3)]  # 100 s apart
    started = time.perf_counter()
    report = run(frames, InstantEngine(), [], live=True, pace=True)
    assert report.frames + report.dropped == 3 and time.perf_counter() - started < 30.0  # paced: 200 s


def test_the_readout_names_the_figures_each_frame_carries(lite0) -> None:
    readout = Readout(smoothing=0.5)
    assert readout.speed() is None and readout.text() is None  # nothing before the first frame is done
    readout.update(0.05, 0.02, 0.03)
    readout.update(0.03, 0.01, 0.02)  # halfway: 0.04 s a frame, 15 ms in the engine, 25 ms latency
    assert readout.speed(2) == Speed(pytest.approx(25.0), pytest.approx(15.0), pytest.approx(25.0), 2)
    assert readout.text(2) == "25.0 FPS  engine 15 ms  latency 25 ms  2 dropped"
    assert readout.text() == "25.0 FPS  engine 15 ms  latency 25 ms"

    class Recording(Engine):
        readouts: list[str | None] = []

        def process_batch(self, frames, readout=None):  # noqa: ANN001, ANN201 - the engine's own signature
            self.readouts.append(readout)
            return super().process_batch(frames, readout)

    seen = []
    with Recording(lite0, "gradcam") as engine:
        report = run(_frames(6), engine, [], on_frame=seen.append)
    assert report.frames == 6 and seen[0].speed is None and engine.readouts[0] is None
    for out, drawn in zip(seen[1:], engine.readouts[1:], strict=True):
        assert out.speed is not None and drawn == out.speed.text()  # the figures drawn are the ones it carries
        assert 0 < out.speed.engine_ms <= out.speed.latency_ms  # a frame's latency spans its engine step
    latencies = [out.frame.latency * 1000 for out in seen]
    assert seen[1].speed.latency_ms == pytest.approx(latencies[0])  # the first average is the first frame's own
