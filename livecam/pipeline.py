"""The loop: frames from a source, through the engine, into the sinks, timed per stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from statistics import median

from livecam.engine import Annotated, Engine
from livecam.sinks import Sink
from livecam.sources import Frame

STAGES = ("decode", "preprocess", "explain", "render", "write")


@dataclass
class RunReport:
    """What a run did: frames, wall time, per-stage timings, how it ended."""

    frames: int = 0
    seconds: float = 0.0
    stage_times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    interrupted: bool = False  # Ctrl-C or SIGTERM
    stopped_by_user: bool = False  # q, Esc, or the window closed

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def median_ms(self, stage: str) -> float:
        times = self.stage_times.get(stage) or [0.0]
        return median(times) * 1000.0


class Readout:
    """The live speed readout: an exponential moving average of frame time and latency."""

    def __init__(self, smoothing: float = 0.1) -> None:
        self.smoothing = smoothing
        self.frame_s: float | None = None
        self.latency_s: float | None = None

    def update(self, frame_s: float, latency_s: float) -> None:
        a = self.smoothing
        self.frame_s = frame_s if self.frame_s is None else (1 - a) * self.frame_s + a * frame_s
        self.latency_s = latency_s if self.latency_s is None else (1 - a) * self.latency_s + a * latency_s

    def text(self) -> str | None:
        if not self.frame_s or self.latency_s is None:
            return None
        return f"{1.0 / self.frame_s:.1f} FPS  {self.latency_s * 1000:.0f} ms"


def run(
    frames: Iterable[Frame],
    engine: Engine,
    sinks: list[Sink],
    max_frames: int | None = None,
    on_frame: Callable[[Annotated], None] | None = None,
) -> RunReport:
    """Explain every frame and hand it to every sink until the source ends,
    ``max_frames`` are done, a sink asks to stop, or the user interrupts.

    Ctrl-C ends the loop cleanly between frames; the caller's ``with`` blocks
    then close the sinks, so the recording holds every processed frame.
    """
    report = RunReport()
    readout = Readout()
    start = time.perf_counter()
    iterator = iter(frames)
    try:
        while max_frames is None or report.frames < max_frames:
            t0 = time.perf_counter()
            frame = next(iterator, None)
            if frame is None:
                break
            t1 = time.perf_counter()
            annotated = engine.process(frame, readout.text())
            t2 = time.perf_counter()
            for sink in sinks:
                sink.write(annotated)
            t3 = time.perf_counter()
            report.frames += 1
            report.stage_times["decode"].append(t1 - t0)
            for stage, seconds in annotated.timings.items():
                report.stage_times.setdefault(stage, []).append(seconds)
            report.stage_times["write"].append(t3 - t2)
            readout.update(t3 - t0, t2 - t1)
            if on_frame is not None:
                on_frame(annotated)
            if any(sink.stop_requested for sink in sinks):
                report.stopped_by_user = True
                break
    except KeyboardInterrupt:
        report.interrupted = True
    report.seconds = time.perf_counter() - start
    return report
