"""The loop: frames from a source, through the engine, into the sinks, timed per stage.

Three threads overlap the work: a reader decodes frame N+1 while the main
thread explains frame N, and a writer encodes frame N-1. What reaches the
engine depends on the source:

- a file: every frame, in order, through a bounded queue (the reader waits when
  the engine is behind); ``batch`` frames are explained per step;
- a live source (camera, stream): the latest frame wins. A frame that the engine
  had no time for is replaced by the next one and counted as dropped, so the
  picture never lags behind reality.

A paced file (``pace``: what the CLI does for a file that is watched, in the
window or a browser, and not recorded) plays at its own rate, as a video player
does: the reader releases each frame no earlier than its time in the source,
on a clock anchored at the first frame (:class:`PlayClock`), so a slow frame
delays none after it, and an engine slower than the source simply goes as fast
as it can. Live sources are never paced; they are real time already.

Sinks that must run on the main thread (the window) get frames there; the
others (the recorder) get them on the writer thread, in order, with none lost.
Stopping (the source ends, ``max_frames``, q in the window, ``stop`` set by a
signal handler) finishes the frames in flight, so a recording holds every
processed frame.

An exception inside the engine (out of memory, say) names the frames it failed
on. ``on_error="stop"`` ends the run with the frames done so far written, then
raises :class:`ModelError`; ``"skip"`` logs a warning, counts the frames as
skipped and goes on. Sinks with a ``write_failure(frame, message)`` method (the
per-frame log) are told of each failed frame, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from livecam.controls import Controls
from livecam.engines.base import AnyEngine
from livecam.errors import LivecamError, ModelError, option
from livecam.sinks import Sink
from livecam.timing import PlayClock
from livecam.types import STAGES, Annotated, Frame, RunReport, Speed

__all__ = ["ON_ERROR", "STAGES", "LatestSlot", "ModelError", "PlayClock", "Readout", "RunReport", "default_pace",
           "failure_message", "run"]

ON_ERROR = ("stop", "skip")
log = logging.getLogger(__name__)


class _End:
    """The reader's last item: the source has no more frames."""


_END = _End()
@dataclass
class _Failure:
    """Frames the engine failed on, for the writer thread to hand to the sinks that log failures."""

    frames: list[Frame]
    message: str


def failure_message(frames: list[Frame], exc: BaseException, limit: int = 300) -> str:
    """One line: "the model failed on frame 123 (4.92 s): RuntimeError: CUDA out of memory ..."."""
    detail = " ".join(str(exc).split())
    detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if len(detail) > limit:
        detail = detail[: limit - 3] + "..."
    first, last = frames[0], frames[-1]
    if len(frames) == 1:
        where = f"frame {first.index} ({first.timestamp:.2f} s)"
    else:
        where = f"frames {first.index}-{last.index} ({first.timestamp:.2f}-{last.timestamp:.2f} s)"
    return f"the model failed on {where}: {detail}"


def default_pace(live: bool, watched: bool, recorded: bool) -> bool:
    """Whether a run plays at the source's own rate when the user did not say: a file (not ``live``) that is
    ``watched`` (a window, a browser) and not ``recorded`` (a recording goes as fast as it can)."""
    return watched and not live and not recorded


class Readout:
    """The live speed readout: exponential moving averages of the frame interval, the engine's time per frame
    and the latency, given as one :class:`~livecam.types.Speed` (drawn on the frame, and served by ``/status``)."""

    def __init__(self, smoothing: float = 0.1) -> None:
        self.smoothing = smoothing
        self.frame_s: float | None = None
        self.engine_s: float | None = None
        self.latency_s: float | None = None

    def _average(self, old: float | None, new: float) -> float:
        return new if old is None else (1 - self.smoothing) * old + self.smoothing * new

    def update(self, frame_s: float, engine_s: float, latency_s: float) -> None:
        self.frame_s = self._average(self.frame_s, frame_s)
        self.engine_s = self._average(self.engine_s, engine_s)
        self.latency_s = self._average(self.latency_s, latency_s)

    def speed(self, dropped: int = 0) -> Speed | None:
        """The figures so far; None before the first frame is done."""
        if not self.frame_s or self.engine_s is None or self.latency_s is None:
            return None
        return Speed(1.0 / self.frame_s, self.engine_s * 1000.0, self.latency_s * 1000.0, dropped)

    def text(self, dropped: int = 0) -> str | None:
        speed = self.speed(dropped)
        return None if speed is None else speed.text()


class LatestSlot:
    """A one-frame mailbox where a new frame replaces an unread one (counted as dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Frame | None = None
        self._ended = False
        self.dropped = 0

    def put(self, item: Frame | _End) -> None:
        with self._cond:
            if isinstance(item, _End):
                self._ended = True  # the unread frame, if any, is still delivered
            else:
                self.dropped += self._item is not None
                self._item = item
            self._cond.notify()

    def get(self, timeout: float) -> Frame | _End | None:
        """The latest frame; _END once the source ended and all is read; None after ``timeout``."""
        with self._cond:
            if self._item is None and not self._ended:
                self._cond.wait(timeout)
            if self._item is not None:
                item, self._item = self._item, None
                item.dropped = self.dropped  # drops so far, for the per-frame log
                return item
            return _END if self._ended else None


class _FrameQueue:
    """A bounded FIFO: nothing is dropped, the reader waits for the engine."""

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue[Frame | _End] = queue.Queue(maxsize=size)
        self.dropped = 0

    def put(self, item: Frame | _End, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, timeout: float) -> Frame | _End | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class _Reader(threading.Thread):
    def __init__(self, frames: Iterable[Frame], live: bool, depth: int, stop: threading.Event,
                 clock: PlayClock | None = None) -> None:
        super().__init__(name="livecam-reader", daemon=True)
        self.frames = frames
        self.live = live
        self.box: LatestSlot | _FrameQueue = LatestSlot() if live else _FrameQueue(depth)
        self.stop = stop
        self.clock = clock  # paced playback: each frame is released at its time
        self.decode_times: list[float] = []
        self.error: BaseException | None = None

    def _put(self, item: Frame | _End) -> None:
        if isinstance(self.box, LatestSlot):
            self.box.put(item)
        else:
            self.box.put(item, self.stop)

    def run(self) -> None:
        iterator: Iterator[Frame] = iter(self.frames)
        last: Frame | None = None
        try:
            while not self.stop.is_set():
                start = time.perf_counter()
                frame = next(iterator, None)
                if frame is None:
                    if self.clock is not None and last is not None:  # the last frame shows for its duration
                        self._until(last.timestamp + (last.duration or 0.0))
                    break
                frame.received = time.perf_counter()
                frame.decode = frame.received - start
                self.decode_times.append(frame.decode)
                if self.clock is not None:
                    self._until(frame.timestamp)
                    frame.received = time.perf_counter()  # its latency counts from its release
                self._put(frame)
                last = frame
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        finally:
            self._put(_END)

    def _until(self, timestamp: float) -> None:
        """Paced: wait (unless stopped) until the source's ``timestamp`` is due."""
        assert self.clock is not None
        wait = self.clock.wait(timestamp, time.perf_counter())
        if wait > 0:
            self.stop.wait(wait)


class _Writer(threading.Thread):
    def __init__(self, sinks: list[Sink], depth: int = 8) -> None:
        super().__init__(name="livecam-writer", daemon=True)
        self.sinks = sinks
        self.queue: queue.Queue[Annotated | _Failure | _End] = queue.Queue(maxsize=depth)
        self.write_times: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if isinstance(item, _End):
                return
            if self.error is not None:
                continue  # drain without writing after a failure
            try:
                if isinstance(item, _Failure):
                    for sink in self.sinks:
                        note: Callable[[Frame, str], None] | None = getattr(sink, "write_failure", None)
                        if note is not None:
                            for frame in item.frames:
                                note(frame, item.message)
                    continue
                start = time.perf_counter()
                for sink in self.sinks:
                    sink.write(item)
                self.write_times.append(time.perf_counter() - start)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self.error = exc


def _idle(main_sinks: list[Sink], stop: threading.Event) -> None:
    """A paused run's wait: the main thread's sinks (the window) read their keys, or a short sleep."""
    if main_sinks:
        for sink in main_sinks:
            sink.idle()
    else:
        stop.wait(0.05)


def run(
    frames: Iterable[Frame],
    engine: AnyEngine,
    sinks: list[Sink],
    max_frames: int | None = None,
    batch: int = 1,
    live: bool | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[Annotated], None] | None = None,
    on_error: str = "stop",
    readout: bool = True,
    pace: bool | PlayClock = False,
    controls: Controls | None = None,
) -> RunReport:
    """Explain frames and hand them to every sink until the source ends, ``max_frames`` are done, a sink asks
    to stop, or ``stop`` is set.

    KeyboardInterrupt is also caught; the CLI instead sets ``stop`` from its signal handler, so the loop ends
    between frames.

    Args:
        frames: the source: any iterable of :class:`~livecam.types.Frame`; its ``is_live`` says whether it is live.
        engine: the engine that explains and annotates (:class:`~livecam.engines.base.Engine`).
        sinks: where the annotated frames go (a window, a recorder, a log).
        max_frames: stop after this many frames (done or skipped); None: when the source ends.
        batch: frames explained per step (files; a live source is explained one frame at a time).
        live: the latest-frame-wins policy; None: the source's ``is_live``.
        stop: set it (from a signal handler, say) to end the run between frames.
        on_frame: called with each annotated frame, after the sinks on the main thread.
        on_error: what an exception inside the engine does (not KeyboardInterrupt, nor a
            :class:`~livecam.errors.LivecamError`, which say the run must end). ``"stop"``: the frames before
            are written, then :class:`~livecam.errors.ModelError` names the failed frames. ``"skip"``: a
            warning, the frames are counted in ``report.skipped``, and the run goes on.
        readout: draw the live speed readout on the frames (False for archives, whose reruns must match). Its
            figures (:class:`~livecam.types.Speed`) are in each annotated frame's ``speed`` either way.
        pace: play a file at its own rate: each frame released no earlier than its timestamp, on a clock anchored
            at the first frame (a :class:`PlayClock` given here can be reset from outside: a pause). Ignored for
            live sources. :func:`default_pace` says when the CLI paces.
        controls: the live view settings (:class:`~livecam.controls.Controls`), applied to the engine before each
            step; the first frame drawn with new ones carries them (``Annotated.settings``). While they say
            paused, no frames are taken and the main thread's sinks are idle (the window still reads its keys).

    Returns:
        The :class:`~livecam.types.RunReport`: frames, wall time, per-stage times, drops, how it ended.

    Example::

        >>> with open_source("clip.mp4") as src, open_engine(EngineOptions()).engine as engine:
        ...     report = run(src, engine, [VideoFileSink(Path("out.mp4"), fps=src.fps)])
        >>> print(f"{report.fps:.1f} FPS")
    """
    if on_error not in ON_ERROR:
        raise LivecamError(f"{option('on_error')} must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    live = bool(getattr(frames, "is_live", False)) if live is None else live
    batch = 1 if live else max(1, batch)
    clock = None if live or pace is False else pace if isinstance(pace, PlayClock) else PlayClock()
    stop = stop or threading.Event()
    halt = threading.Event()  # tells the reader to stop, whatever the reason
    report = RunReport()
    meter = Readout()  # the speed readout's figures
    reader = _Reader(frames, live, depth=2 * batch + 2, stop=halt, clock=clock)
    writer = _Writer([s for s in sinks if not s.main_thread])
    main_sinks = [s for s in sinks if s.main_thread]
    start = last = time.perf_counter()
    reader.start()
    writer.start()
    ended = False
    try:
        while not ended and not stop.is_set() and (max_frames is None or report.frames + report.skipped < max_frames):
            if controls is not None and controls.paused:
                _idle(main_sinks, stop)
                if any(s.stop_requested for s in sinks):
                    report.stopped_by_user = True
                    break
                continue
            settings = controls.apply(engine) if controls is not None else None
            want = batch if max_frames is None else min(batch, max_frames - report.frames - report.skipped)
            chunk: list[Frame] = []
            while len(chunk) < want and not stop.is_set():
                item = reader.box.get(timeout=0.0 if chunk and clock is not None else 0.1)
                if isinstance(item, _End):
                    ended = True
                    break
                if item is not None:
                    chunk.append(item)
                elif clock is not None and chunk:
                    break  # paced: a batch of the frames that are due, not a wait for later ones
                elif clock is not None:  # paced, the next frame not due: the window's keys are read meanwhile
                    for sink in main_sinks:
                        sink.poll()
                    if any(s.stop_requested for s in main_sinks) or (controls is not None and controls.paused):
                        break
            if not chunk:
                if any(s.stop_requested for s in main_sinks):
                    report.stopped_by_user = True
                    break
                continue
            figures = meter.speed(chunk[-1].dropped)  # the drops so far, as the frame itself counts them
            step_start = time.perf_counter()
            try:
                annotated = engine.process_batch(chunk, figures.text() if readout and figures else None)
            except (LivecamError, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - out of memory and the like: named, then on_error decides
                message = failure_message(chunk, exc)
                writer.queue.put(_Failure(chunk, message))
                if on_error == "stop":
                    report.error = message
                    break
                log.warning("%s; skipped", message)
                report.skipped += len(chunk)
                continue
            step_s = time.perf_counter() - step_start
            if settings is not None and annotated:
                annotated[0].settings = dict(settings)
            for out in annotated:
                out.speed = figures
                for sink in main_sinks:
                    sink.write(out)
                out.frame.latency = time.perf_counter() - out.frame.received
                report.latencies.append(out.frame.latency)
                writer.queue.put(out)
                for stage, seconds in out.timings.items():
                    report.stage_times.setdefault(stage, []).append(seconds)
                if on_frame is not None:
                    on_frame(out)
            report.frames += len(chunk)
            now = time.perf_counter()
            meter.update((now - last) / len(chunk), step_s / len(chunk),
                         sum(out.frame.latency for out in annotated) / max(1, len(annotated)))
            last = now
            if writer.error is not None or any(s.stop_requested for s in sinks):
                report.stopped_by_user = writer.error is None
                break
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        halt.set()
        writer.queue.put(_END)
        writer.join()
        reader.join(timeout=5.0)  # a camera read can block; the thread is a daemon
    report.interrupted = report.interrupted or stop.is_set()
    report.seconds = time.perf_counter() - start
    report.dropped = reader.box.dropped
    report.stage_times["decode"] = reader.decode_times[: report.frames + report.skipped + report.dropped]
    report.stage_times["write"] = writer.write_times
    for error in (reader.error, writer.error):
        if error is not None:
            raise error
    if report.error is not None:
        raise ModelError(report.error, report)
    return report
