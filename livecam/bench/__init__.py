"""``livecam bench``: latency as edge devices are compared, where the time goes, and the speed a user sees.

On the same decoded frames, in one process, with the engine ``livecam run`` would pick:

1. **Single-stream latency** (MLPerf's SingleStream scenario: one frame at a time,
   the next when the last is done): the whole step, frame in to annotated frame
   out, and each stage of it (synchronized per stage on a GPU), as p50, p90 and
   p99 over many frames after a warm-up, as trtexec reports them.
2. **The explanation against plain inference**, like for like: the explanation
   call and plain inference of the same model, each timed whole on the same
   prepared input, in turns, so that a noisy neighbour slows both alike. On ONNX
   Runtime plain inference is the explainer graph cut down to its logits.
3. **End to end**: the threaded pipeline on a real video file (decode, explain,
   overlay, encode): FPS, and each frame's latency from the decoder to the sinks.
4. **Start-up**: from the command to the first annotated frame, in fresh processes.
5. **The peer**, where PyTorch and pytorch-grad-cam are installed: its ``GradCAM``
   and ``show_cam_on_image`` per frame, as its README shows.

The JSON report (schema ``livecam-bench/2``, documented in benchmarks/README.md
and checked by ``bench.schema.json``) records the device, the provider or
backend, the precision, batch and input size and the versions, so that
``livecam bench --compare A.json B.json`` lines up results from different
machines. No PyTorch is imported unless the PyTorch engine or the peer runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from livecam import __version__
from livecam.errors import LivecamError, RunError
from livecam.engines.launch import EngineOptions, open_engine
from livecam.sinks import write_frames
from livecam.sources import Source, open_source
from livecam.types import Frame

log = logging.getLogger(__name__)

SCHEMA = "livecam-bench/2"
SCHEMA_FILE = Path(__file__).with_name("schema.json")


@dataclass
class Stat:
    """Latency percentiles in milliseconds (nearest rank: each is a measured time), the mean, and the count."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Stat:
        if not seconds:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        ms = sorted(s * 1000.0 for s in seconds)

        def rank(p: float) -> float:
            return ms[max(0, math.ceil(p / 100.0 * len(ms)) - 1)]

        return cls(rank(50), rank(90), rank(99), sum(ms) / len(ms), len(ms))

    @classmethod
    def from_dict(cls, data: dict) -> Stat:
        return cls(**{k: data[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "n")})


@dataclass
class BenchResult:
    """One ``livecam bench`` run; ``to_json`` writes schema ``livecam-bench/2``."""

    config: dict
    machine: dict
    label: str = ""
    stages: dict[str, Stat] = field(default_factory=dict)  # per frame, single stream
    step: Stat | None = None  # frame in -> annotated frame out, per frame
    explanation: Stat | None = None  # the explanation call alone, whole, per frame
    floor: Stat | None = None  # plain inference of the same model, whole, per frame
    peer: Stat | None = None  # pytorch-grad-cam + show_cam_on_image, per frame
    pipeline: dict = field(default_factory=dict)  # fps, frames, seconds, latency (Stat), stages
    startup_s: list[float] = field(default_factory=list)  # command -> first annotated frame, per fresh process
    memory: dict = field(default_factory=dict)  # rss_mb and device_mb samples

    def ratios(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.explanation and self.floor and self.floor.p50_ms:
            out["explanation / plain inference (p50)"] = self.explanation.p50_ms / self.floor.p50_ms
        if self.peer and self.step and self.step.p50_ms:
            out["peer / livecam step (p50)"] = self.peer.p50_ms / self.step.p50_ms
        peer_fps = self.peer_pipeline_fps()
        if peer_fps and self.pipeline.get("fps"):
            out["livecam pipeline / peer pipeline (FPS)"] = self.pipeline["fps"] / peer_fps
        return out

    def peer_pipeline_fps(self) -> float | None:
        """The peer end to end: decode, the peer and encode one after the other, from the medians."""
        stages = self.pipeline.get("stages", {})
        if self.peer is None or "decode" not in stages or "write" not in stages:
            return None
        return 1000.0 / (stages["decode"].p50_ms + self.peer.p50_ms + stages["write"].p50_ms)

    def startup_p50_s(self) -> float | None:
        """The median start-up of the runs after the first (which may export and cache the graph)."""
        runs = self.startup_s[1:] or self.startup_s
        return sorted(runs)[(len(runs) - 1) // 2] if runs else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data = {"schema": SCHEMA, **data, "ratios": self.ratios(), "peer_pipeline_fps": self.peer_pipeline_fps(),
                "startup_p50_s": self.startup_p50_s()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> BenchResult:
        def stat(value: dict | None) -> Stat | None:
            return Stat.from_dict(value) if value else None

        pipeline = dict(data.get("pipeline") or {})
        if pipeline.get("latency"):
            pipeline["latency"] = Stat.from_dict(pipeline["latency"])
        pipeline["stages"] = {k: Stat.from_dict(v) for k, v in (pipeline.get("stages") or {}).items()}
        return cls(config=data["config"], machine=data["machine"], label=data.get("label", ""),
                   stages={k: Stat.from_dict(v) for k, v in data.get("stages", {}).items()},
                   step=stat(data.get("step")), explanation=stat(data.get("explanation")),
                   floor=stat(data.get("floor")), peer=stat(data.get("peer")), pipeline=pipeline,
                   startup_s=list(data.get("startup_s", [])), memory=data.get("memory", {}))

    @property
    def title(self) -> str:
        """A short name for a column: the label, else the device and the runtime."""
        return self.label or f"{self.machine.get('device', '?')}, {self.config.get('runtime', '?')}"

    def markdown(self) -> str:
        c, m = self.config, self.machine
        lines = [
            f"livecam bench: {c['model']} {c['method']} {c['precision']}, batch {c['batch']}, input "
            f"{c['input_size'][0]}x{c['input_size'][1]}, {c['frame_size'][0]}x{c['frame_size'][1]} frames from "
            f"{c['source']}, {c['frames']} frames after {c['warmup']} warm-up; {c['runtime']}; {m['device']} "
            f"({m['date']}, livecam {m['versions'].get('livecam', '?')})",
            "",
            "| per frame, single stream | p50 ms | p90 ms | p99 ms |",
            "| --- | --- | --- | --- |",
        ]
        rows = [*self.stages.items(), ("**step: frame in -> annotated frame out**", self.step),
                ("explanation (one whole call)", self.explanation), ("plain inference (one whole call)", self.floor),
                ("peer: pytorch-grad-cam GradCAM + show_cam_on_image", self.peer)]
        if self.pipeline.get("latency"):
            rows.append(("pipeline latency: decoded -> handed to the sinks", self.pipeline["latency"]))
        for name, stat in rows:
            if stat is not None and stat.n:
                lines.append(f"| {name} | {stat.p50_ms:.2f} | {stat.p90_ms:.2f} | {stat.p99_ms:.2f} |")
        lines += ["", f"End to end (decode, explain, overlay, encode; threaded): **{self.pipeline.get('fps', 0):.1f} "
                      "FPS**"]
        if self.peer_pipeline_fps():
            lines.append(f"Peer end to end (decode, peer, encode; serial): {self.peer_pipeline_fps():.1f} FPS")
        if self.startup_s:
            runs = ", ".join(f"{s:.2f}" for s in self.startup_s)
            lines.append(f"Start-up, command to first annotated frame: {self.startup_p50_s():.2f} s (runs: {runs} s; "
                         "the first may export and cache the graph)")
        for name, value in self.ratios().items():
            lines.append(f"- {name}: {value:.2f}x")
        for name, samples in self.memory.items():
            if samples:
                lines.append(f"- {name.replace('_mb', '')} memory (MB): "
                             + ", ".join(f"{k} {v:.0f}" for k, v in samples.items()))
        return "\n".join(lines) + "\n"


# --- the machine ------------------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read().replace("\x00", "").strip()
    except OSError:
        return ""


def _command(*args: str) -> str:
    if shutil.which(args[0]) is None:
        return ""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _version(*packages: str) -> str | None:
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(package)
    return None


def machine_info() -> dict:
    """The machine, without PyTorch: CPU, GPU and driver (nvidia-smi), Jetson model and power mode, versions."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               "") or platform.processor() or platform.machine()
    gpus = [line.split(", ") for line in _command("nvidia-smi", "--query-gpu=name,driver_version",
                                                  "--format=csv,noheader").splitlines() if line]
    board = _read("/proc/device-tree/model")
    jetson = None
    if "jetson" in board.lower() or os.path.exists("/etc/nv_tegra_release"):
        mode = _command("nvpmodel", "-q")
        jetson = {"model": board, "l4t": _read("/etc/nv_tegra_release").splitlines()[0:1] or None,
                  "power_mode": " ".join(mode.split()) or None}
    gpu = gpus[0][0] if gpus else None
    device = f"{gpu} (driver {gpus[0][1]})" if gpus and len(gpus[0]) > 1 else gpu or f"CPU {cpu}"
    return {
        "device": jetson["model"] if jetson else device,
        "cpu": cpu, "cpu_count": os.cpu_count(), "gpus": [g[0] for g in gpus],
        "gpu_driver": gpus[0][1] if gpus and len(gpus[0]) > 1 else None, "jetson": jetson,
        "os": platform.platform(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
        "versions": {"livecam": __version__, "onnxruntime": _version("onnxruntime-gpu", "onnxruntime"),
                     "torch": _version("torch"), "opencv": cv2.__version__, "numpy": np.__version__},
    }


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LivecamError(f"--size must look like 1280x720, not '{text}'") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise LivecamError(f"--size {text} is out of range: each side must lie in 16 to 8192")
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


# --- what is timed on ONNX Runtime --------------------------------------------------------------------------------


class RuntimeTarget:
    """What the benchmark times on the ONNX Runtime engine, each as a whole call returning its wall time.

    ``explanation(i)`` runs the explainer graph on chunk ``i``'s prepared input
    (all four outputs); ``floor(i)`` runs plain inference of the same model on the
    same input with the same provider: the explainer graph cut down to its
    ``logits`` output (``onnx.utils.extract_model``), so neither the maps nor the
    top-K are computed.
    """

    stage_order = ("preprocess", "explain", "render")

    def __init__(self, engine: Any, chunks: list[list[np.ndarray]], workdir: Path) -> None:
        import onnx.utils

        from livecam.engines.runtime.session import RuntimeSession

        self.engine = engine
        session = engine.session
        self.inputs = [self._input(c) for c in chunks[:64]]
        floor_path = workdir / "floor.onnx"
        onnx.utils.extract_model(str(engine.path), str(floor_path), [session.input_name], ["logits"])
        self.floor_session = RuntimeSession(floor_path, session.request, cache_dir=session.cache_dir,
                                            io_binding=session.io_binding)

    def _input(self, chunk: list[np.ndarray]) -> np.ndarray:
        from livecam.engines.runtime.graph import INPUT_FRAMES

        return np.stack(chunk) if self.engine.info.input == INPUT_FRAMES else self.engine._tensor(chunk)

    @staticmethod
    def _timed(fn: Any) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def floor(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        return self._timed(lambda: self.floor_session.run(x, ["logits"]))

    def explanation(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        return self._timed(lambda: self.engine._run(x))

    def stages(self, chunk: list[np.ndarray]) -> dict[str, float]:
        from livecam.engines.runtime.graph import INPUT_FRAMES

        t0 = time.perf_counter()
        x = self._input(chunk)
        t1 = time.perf_counter()
        explanation = self.engine._run(x)
        t2 = time.perf_counter()
        for j, image in enumerate(chunk):
            self.engine.render(Frame(image, j, 0.0), explanation, j)
        t3 = time.perf_counter()
        stages = {"preprocess": t1 - t0, "explain": t2 - t1, "render": t3 - t2}
        if self.engine.info.input == INPUT_FRAMES:  # stacking only: the graph resizes and normalizes
            stages["explain"] += stages.pop("preprocess")
        return stages

    def step(self, frames: list[Frame]) -> float:
        return self._timed(lambda: self.engine.process_batch(frames))

    def config(self) -> dict:
        info = self.engine.info
        return {"engine": "onnxruntime", "runtime": self.engine.description, "provider": self.engine.session.provider,
                "precision": info.precision, "layer": info.layer, "input": info.input,
                "input_size": list(info.preprocess.size), "graph_file": str(self.engine.path)}

    def device_memory_mb(self) -> dict[str, float]:
        return {}

    def device_name(self) -> str | None:
        return None


# --- the runs -------------------------------------------------------------------------------------------------------


def bench_step(target: Any, frames: list[np.ndarray], batch: int, warmup: int) -> tuple[dict, Stat, Stat, Stat]:
    """Stages, the whole step, the explanation and the floor, per frame, the last three in turns on each chunk."""
    chunks = [frames[i * batch:(i + 1) * batch] for i in range(len(frames) // batch)]
    sums: list[dict[str, float]] = []
    steps, explanations, floors = [], [], []
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


def bench_pipeline(engine: Any, video: Path, batch: int) -> tuple[dict, dict[str, float]]:
    """The threaded pipeline on a real video file, writing a real mp4: the FPS and latency a user sees."""
    from livecam.pipeline import run
    from livecam.sinks import VideoFileSink

    out = Path(tempfile.mkdtemp(prefix="livecam-bench-")) / "out.mp4"
    samples: dict[str, float] = {"start": rss_mb()}
    src: Source = open_source(str(video))
    total = src.frame_count or 0

    def sample(annotated: Any) -> None:
        if annotated.frame.index == total // 10:
            samples["after 10% of frames"] = rss_mb()

    try:
        with src, VideoFileSink(out, fps=src.fps) as sink:
            report = run(src, engine, [sink], batch=batch, on_frame=sample)
    finally:
        out.unlink(missing_ok=True)
        out.parent.rmdir()
    samples["end"] = rss_mb()
    pipeline = {"fps": report.fps, "frames": report.frames, "seconds": report.seconds,
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
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        seen = None
        lines = []
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
        raise LivecamError(f"--frames {frames} is fewer than one batch of {batch}")
    launched = open_engine(options)  # a device or model that is refused says so before the frames load
    engine = launched.engine
    try:
        images, video = load_frames(source, size, frames)
    except BaseException:
        engine.close()
        raise
    workdir = Path(tempfile.mkdtemp(prefix="livecam-bench-"))
    closed = False
    try:
        chunks = [images[i * batch:(i + 1) * batch] for i in range(len(images) // batch)]
        if launched.backend == "onnx":
            target: Any = RuntimeTarget(engine, chunks, workdir)
            model_name = engine.info.model
        else:
            from livecam.bench.torch_target import TorchTarget

            target = TorchTarget(engine, chunks, options.graph)
            model_name = engine.model.name
        config = {"model": model_name, "method": launched.method, "batch": batch, "source": source,
                  "frame_size": [images[0].shape[1], images[0].shape[0]], "frames": frames, "warmup": warmup,
                  "device": options.device, **target.config()}
        machine = machine_info()
        if target.device_name():
            machine["device"] = target.device_name()
        result = BenchResult(config=config, machine=machine, label=label)
        result.stages, result.step, result.explanation, result.floor = bench_step(target, images, batch, warmup)
        result.pipeline, rss = bench_pipeline(engine, video, batch)
        result.stages = {"decode": result.pipeline["stages"].get("decode", Stat.of([])), **result.stages,
                         "encode": result.pipeline["stages"].get("write", Stat.of([]))}
        result.memory = {"rss_mb": rss, "device_mb": target.device_memory_mb()}
        layer = config["layer"]
        engine.close()
        closed = True
        if peer:
            result.peer = _peer(options, layer, images, warmup)
        if startup:
            result.startup_s = startup_runs(options, video, startup)
        return result
    finally:
        if not closed:
            engine.close()
        video.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _peer(options: EngineOptions, layer: str, images: list[np.ndarray], warmup: int) -> Stat | None:
    """The peer on the same frames: needs PyTorch and a zoo model (an exported graph has no PyTorch twin)."""
    if options.is_graph_file:
        log.info("no peer column: %s is an exported graph", options.model)
        return None
    try:
        from livecam.bench.torch_target import time_peer
        from livecam.zoo import load_model
    except ImportError:
        log.warning("no peer column: the peer needs PyTorch (pip install 'livecam[torch]' grad-cam)")
        return None
    device = "cpu" if options.device in ("auto", "tensorrt") and options.backend != "torch" else options.device
    model = load_model(options.model, weights=options.weights, device=device)
    times = time_peer(model, layer, images[: min(len(images), 100)], min(warmup, 5))
    return None if times is None else Stat.of(times)


# --- reading, comparing and drawing reports ------------------------------------------------------------------------


def load_result(path: Path) -> BenchResult:
    """A JSON report of ``livecam bench``, checked against the schema's required keys."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LivecamError(f"cannot read {path} as a livecam bench report ({exc}); give JSON files written by "
                           "'livecam bench --json'") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema", "none") if isinstance(data, dict) else type(data).__name__
        raise LivecamError(f"{path} is not a livecam bench report of schema {SCHEMA} (it says {found}); "
                           "run livecam bench --json again with this livecam")
    try:
        result = BenchResult.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise LivecamError(f"{path} lacks {exc} of schema {SCHEMA}; run livecam bench --json again") from None
    return result if result.label else _labelled(result, Path(path).stem)


def _labelled(result: BenchResult, label: str) -> BenchResult:
    result.label = label
    return result


def compare_markdown(results: list[BenchResult]) -> str:
    """A side-by-side table of several reports: one column each, the rows lined up."""

    def cells(values: list[str]) -> str:
        return "| " + " | ".join(values) + " |"

    def ms(stat: Stat | None) -> str:
        return f"{stat.p50_ms:.2f} / {stat.p90_ms:.2f} / {stat.p99_ms:.2f}" if stat and stat.n else ""

    rows: list[tuple[str, list[str]]] = [
        ("device", [r.machine.get("device", "") for r in results]),
        ("runtime", [r.config.get("runtime", "") for r in results]),
        ("model, method", [f"{r.config['model']}, {r.config['method']}" for r in results]),
        ("precision, batch", [f"{r.config['precision']}, {r.config['batch']}" for r in results]),
        ("input, frames", [f"{r.config['input_size'][0]}x{r.config['input_size'][1]}, "
                           f"{r.config['frame_size'][0]}x{r.config['frame_size'][1]}" for r in results]),
        ("**end to end FPS**", [f"**{r.pipeline.get('fps', 0):.1f}**" for r in results]),
        ("step p50 / p90 / p99 ms", [ms(r.step) for r in results]),
        ("explanation p50 / p90 / p99 ms", [ms(r.explanation) for r in results]),
        ("plain inference p50 / p90 / p99 ms", [ms(r.floor) for r in results]),
        ("explanation / plain inference", [f"{r.ratios().get('explanation / plain inference (p50)', 0):.2f}x"
                                           for r in results]),
        ("pipeline latency p50 / p90 / p99 ms", [ms(r.pipeline.get("latency")) for r in results]),
        ("start-up to first frame", [f"{r.startup_p50_s():.2f} s" if r.startup_s else "" for r in results]),
    ]
    stage_names: list[str] = []
    for r in results:
        stage_names += [s for s in r.stages if s not in stage_names]
    rows += [(f"{name} p50 ms", [f"{r.stages[name].p50_ms:.2f}" if name in r.stages and r.stages[name].n else ""
                                 for r in results]) for name in stage_names]
    rows.append(("date, livecam", [f"{r.machine.get('date', '')}, {r.machine.get('versions', {}).get('livecam', '')}"
                                   for r in results]))
    lines = [cells(["", *(r.title for r in results)]), cells(["---"] * (len(results) + 1))]
    lines += [cells([name, *values]) for name, values in rows]
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LivecamError("drawing a chart needs matplotlib: pip install matplotlib") from None
    return plt


def _save_figure(fig: Any, path: Path) -> None:
    """Save a chart whole or not at all (a partial file moved into place), then free it."""
    import matplotlib.pyplot as plt

    from livecam.outputs import replace_atomically

    try:
        with replace_atomically(path) as partial:
            fig.savefig(partial, dpi=110, format=path.suffix.lower().lstrip(".") or "png")
    except OSError as exc:
        raise RunError(f"could not write {path} ({exc.strerror or exc}); it is left as it was") from None
    finally:
        plt.close(fig)


def plot(result: BenchResult, path: Path) -> None:
    """A bar chart of the per-frame p50 times, with p90 and p99 marked (needs matplotlib)."""
    plt = _pyplot()
    bars = {f"stage: {k}": v for k, v in result.stages.items() if v.n}
    for name, stat in (("step (frame in -> annotated out)", result.step), ("explanation", result.explanation),
                       ("plain inference", result.floor), ("peer (pytorch-grad-cam)", result.peer)):
        if stat is not None and stat.n:
            bars[name] = stat
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.4))
    names = list(bars)
    colours = ["#cc6677" if n.startswith("peer") else "#999999" if n.startswith("plain") else "#4477aa"
               for n in names]
    ax.barh(names, [bars[n].p50_ms for n in names], color=colours)
    ax.scatter([bars[n].p90_ms for n in names], names, marker="|", color="black", s=120, label="p90", zorder=3)
    ax.scatter([bars[n].p99_ms for n in names], names, marker="x", color="black", s=30, label="p99", zorder=3)
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame (bar: p50)")
    ax.legend(loc="best", fontsize=8)
    c = result.config
    ax.set_title(f"{c['model']} {c['method']} {c['precision']}, {c['frame_size'][0]}x{c['frame_size'][1]}, "
                 f"{c['runtime']}\n{result.machine['device']}: end to end {result.pipeline.get('fps', 0):.1f} FPS",
                 fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_compare(results: list[BenchResult], path: Path) -> None:
    """Side by side: each report's step latency (p50 bar, p90 and p99 marks) and its end-to-end FPS."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(results) + 1.8))
    names = [_wrap(r.title) for r in results]
    steps = [r.step or Stat.of([]) for r in results]
    left.barh(names, [s.p50_ms for s in steps], color="#4477aa")
    left.scatter([s.p90_ms for s in steps], names, marker="|", color="black", s=120, label="p90", zorder=3)
    left.scatter([s.p99_ms for s in steps], names, marker="x", color="black", s=30, label="p99", zorder=3)
    left.set_xlabel("step: frame in -> annotated frame out, ms (bar: p50)")
    left.legend(loc="best", fontsize=8)
    left.invert_yaxis()
    right.barh(names, [r.pipeline.get("fps", 0) for r in results], color="#228833")
    right.set_xlabel("end to end FPS (decode, explain, overlay, encode)")
    right.set_yticks([])
    right.invert_yaxis()
    fig.tight_layout()
    _save_figure(fig, path)


def _wrap(text: str, width: int = 28) -> str:
    return "\n".join(re.findall(rf".{{1,{width}}}(?:\s+|$)", text)) or text
