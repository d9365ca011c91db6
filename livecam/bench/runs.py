"""The runs of ``livecam bench``: the frames it measures on, single-stream latency, the pipeline, start-up.

:func:`run_bench` opens the engine ``livecam run`` would pick (a refused device says
so before any frame is decoded), loads the frames once, and times on them, in one
process: each stage and the whole step, the explanation against plain inference in
turns (:func:`bench_step`), then the threaded pipeline on a real video file
(:func:`bench_pipeline`); after the engine is closed, the peer and the start-up
runs in fresh processes (:func:`startup_runs`). What is timed on each engine is a
:class:`BenchTarget`: :class:`~livecam.bench.runtime_target.RuntimeTarget`, or
:class:`~livecam.bench.torch_target.TorchTarget` (imported only when PyTorch runs).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from livecam.bench.machine import machine_info, rss_mb
from livecam.bench.report import BenchConfig, BenchResult, PipelineResult, Stat, TargetConfig
from livecam.bench.runtime_target import RuntimeTarget
from livecam.engines.base import AnyEngine
from livecam.engines.launch import EngineOptions, Launched, open_engine
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.errors import LivecamError, option
from livecam.sinks import write_frames
from livecam.sources import Source, open_source
from livecam.types import Annotated, Frame

log = logging.getLogger(__name__)


class BenchTarget(Protocol):
    """What the benchmark times on one engine, each as a whole call returning its wall time in seconds."""

    @property
    def stage_order(self) -> tuple[str, ...]:
        """The stages of one step, in order, as :meth:`stages` names them."""
        ...

    @property
    def model_name(self) -> str: ...

    def floor(self, i: int) -> float:
        """Plain inference of the same model on chunk ``i``'s prepared input."""
        ...

    def explanation(self, i: int) -> float:
        """The explanation call on chunk ``i``'s prepared input."""
        ...

    def stages(self, chunk: list[np.ndarray]) -> dict[str, float]:
        """One step on ``chunk``, stage by stage: seconds per stage for the chunk."""
        ...

    def step(self, frames: list[Frame]) -> float:
        """The whole step: frames in, annotated frames out."""
        ...

    def config(self) -> TargetConfig: ...

    def device_memory_mb(self) -> dict[str, float]: ...

    def device_name(self) -> str | None: ...


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"1280x720"`` -> (1280, 720); None or empty: None (the frames keep their size)."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LivecamError(f"{option('size')} must look like 1280x720, not '{text}'") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise LivecamError(f"{option('size')} {text} is out of range: each side must lie in 16 to 8192")
    return w, h


def load_frames(source: str, size: tuple[int, int] | None, count: int) -> tuple[list[np.ndarray], Path]:
    """``count`` frames of ``source`` (repeated if it is shorter), resized to ``size``, and a video file of them."""
    with open_source(source) as src:
        frames = []
        for frame in src:
            frames.append(frame.image if size is None else cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA))
            if len(frames) >= count:
                break
    if not frames:
        raise LivecamError(f"{source} gave no frames to measure")
    frames = [frames[i % len(frames)] for i in range(count)]
    fd, name = tempfile.mkstemp(prefix="livecam-bench-", suffix=".mp4")
    os.close(fd)
    return frames, write_frames(Path(name), frames, 30.0)


def bench_step(target: BenchTarget, frames: list[np.ndarray], batch: int,
               warmup: int) -> tuple[dict[str, Stat], Stat, Stat, Stat]:
    """Stages, the whole step, the explanation and the floor, per frame, the last three in turns on each chunk."""
    chunks = [frames[i * batch:(i + 1) * batch] for i in range(len(frames) // batch)]
    sums: list[dict[str, float]] = []
    steps: list[float] = []
    explanations: list[float] = []
    floors: list[float] = []
    for i in range(warmup + len(chunks)):
        chunk = chunks[i % len(chunks)]
        floor_s = target.floor(i)
        explanation_s = target.explanation(i)
        stage_s = target.stages(chunk)
        step_s = target.step([Frame(image, j, 0.0) for j, image in enumerate(chunk)])
        if i >= warmup:
            floors.append(floor_s / batch)
            explanations.append(explanation_s / batch)
            steps.append(step_s / batch)
            sums.append(stage_s)
    stages = {s: Stat.of([step[s] / batch for step in sums]) for s in target.stage_order if sums and s in sums[0]}
    return stages, Stat.of(steps), Stat.of(explanations), Stat.of(floors)


def bench_pipeline(engine: AnyEngine, video: Path, batch: int) -> tuple[PipelineResult, dict[str, float]]:
    """The threaded pipeline on a real video file, writing a real mp4: the FPS and latency a user sees."""
    from livecam.pipeline import run
    from livecam.sinks import VideoFileSink

    out = Path(tempfile.mkdtemp(prefix="livecam-bench-")) / "out.mp4"
    samples: dict[str, float] = {"start": rss_mb()}
    src: Source = open_source(str(video))
    total = src.frame_count or 0

    def sample(annotated: Annotated) -> None:
        if annotated.frame.index == total // 10:
            samples["after 10% of frames"] = rss_mb()

    try:
        with src, VideoFileSink(out, fps=src.fps) as sink:
            report = run(src, engine, [sink], batch=batch, on_frame=sample)
    finally:
        out.unlink(missing_ok=True)
        out.parent.rmdir()
    samples["end"] = rss_mb()
    pipeline: PipelineResult = {"fps": report.fps, "frames": report.frames, "seconds": report.seconds,
                                "latency": Stat.of(report.latencies),
                                "stages": {s: Stat.of(t) for s, t in report.stage_times.items() if t}}
    return pipeline, samples


def startup_runs(options: EngineOptions, video: Path, runs: int, timeout: float = 300.0) -> list[float]:
    """Seconds from starting ``livecam run`` in a fresh process to its first annotated frame, ``runs`` times.

    The clock starts before the process is created and stops when the process
    reports its first annotated frame (with -v), so it holds the interpreter's
    start, the imports, loading the model and the first frame.
    """
    args = [sys.executable, "-m", "livecam", "run", "--model", options.model, "--source", str(video),
            "--max-frames", "1", "--no-show", "-v", "--device", options.device, "--backend", options.backend]
    for flag, value in (("--weights", options.weights), ("--method", options.method), ("--layer", options.layer),
                        ("--class", options.target_class)):
        if value is not None:
            args += [flag, value]
    if options.precision != "auto":
        args += ["--precision", options.precision]
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        seen: float | None = None
        lines: list[str] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if seen is None and "first annotated frame" in line:
                    seen = time.perf_counter() - start
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        if seen is None or proc.returncode != 0:
            tail = " ".join("".join(lines[-3:]).split())
            raise LivecamError(f"the start-up run failed (exit code {proc.returncode}): {tail[:300]}")
        times.append(seen)
    return times


def run_bench(
    options: EngineOptions,
    batch: int = 1,
    source: str = "demo",
    size: tuple[int, int] | None = None,
    frames: int = 300,
    warmup: int = 20,
    peer: bool = True,
    startup: int = 0,
    label: str = "",
) -> BenchResult:
    """Benchmark the engine ``options`` open (as ``livecam run`` would), on ``frames`` frames of ``source``."""
    if frames < batch:
        raise LivecamError(f"{option('frames')} {frames} is fewer than one batch of {batch}")
    launched = open_engine(options)  # a device or model that is refused says so before the frames load
    video: Path | None = None
    try:
        with launched.engine:
            images, video = load_frames(source, size, frames)
            result = _measure(launched, options, images, video, batch, source, warmup, label)
        if peer:
            result.peer = _peer(options, result.config["layer"], images, warmup)
        if startup:
            result.startup_s = startup_runs(options, video, startup)
        return result
    finally:
        if video is not None:
            video.unlink(missing_ok=True)


def _measure(launched: Launched, options: EngineOptions, images: list[np.ndarray], video: Path, batch: int,
             source: str, warmup: int, label: str) -> BenchResult:
    """Everything timed with the engine open: the step and its stages on ``images``, then the pipeline on ``video``."""
    chunks = [images[i * batch:(i + 1) * batch] for i in range(len(images) // batch)]
    with tempfile.TemporaryDirectory(prefix="livecam-bench-", ignore_cleanup_errors=True) as workdir:
        target = _target(launched.engine, chunks, Path(workdir), options.graph)
        config: BenchConfig = {"model": target.model_name, "method": launched.method, "batch": batch,
                               "source": source, "frame_size": [images[0].shape[1], images[0].shape[0]],
                               "frames": len(images), "warmup": warmup, "device": options.device, **target.config()}
        machine = machine_info()
        device = target.device_name()
        if device:
            machine["device"] = device
        result = BenchResult(config=config, machine=machine, label=label)
        result.stages, result.step, result.explanation, result.floor = bench_step(target, images, batch, warmup)
        result.pipeline, rss = bench_pipeline(launched.engine, video, batch)
        stages = result.pipeline["stages"]
        result.stages = {"decode": stages.get("decode", Stat.of([])), **result.stages,
                         "encode": stages.get("write", Stat.of([]))}
        result.memory = {"rss_mb": rss, "device_mb": target.device_memory_mb()}
    return result


def _target(engine: AnyEngine, chunks: list[list[np.ndarray]], workdir: Path, graph: bool) -> BenchTarget:
    """What is timed on ``engine``: the ONNX Runtime side here, the PyTorch side from its own module."""
    if isinstance(engine, RuntimeEngine):
        return RuntimeTarget(engine, chunks, workdir)
    from livecam.bench.torch_target import TorchTarget
    from livecam.engines.pytorch.engine import TorchEngine

    assert isinstance(engine, TorchEngine), "an engine is a RuntimeEngine or a TorchEngine"
    return TorchTarget(engine, chunks, graph)


def _peer(options: EngineOptions, layer: str, images: list[np.ndarray], warmup: int) -> Stat | None:
    """The peer on the same frames: needs PyTorch and a zoo model (an exported graph has no PyTorch twin)."""
    if options.is_graph_file:
        log.info("no peer column: %s is an exported graph", options.model)
        return None
    try:
        from livecam.bench.torch_target import peer_stat
    except ImportError:
        log.warning("no peer column: the peer needs PyTorch (pip install 'livecam[torch]' grad-cam)")
        return None
    return peer_stat(options, layer, images, warmup)
