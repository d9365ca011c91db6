"""``livecam bench``: where the time goes, against the floor and the peers, on the same frames.

Three measurements in one process, on the same decoded frames:

1. livecam's step, stage by stage (preprocess, forward, backward, CAM, render),
   synchronized per stage on CUDA so each time is the stage's own, and whole, as
   the CLI runs it (graphed on CUDA); and the threaded pipeline end to end
   (decode, explain, overlay, encode) on a real video file: the FPS a user sees.
2. The floor: plain inference of the same model, same precision and layout,
   graphed where the engine is, run in turns with the step on the same frames.
3. The peer, when ``grad-cam`` (pytorch-grad-cam) is installed: its ``GradCAM``
   and ``show_cam_on_image`` on each frame, as its README shows, on an fp32 copy
   of the model whose parameters require grad, as a user's would.

Timing is wall-clock after warm-up; medians and 95th percentiles over many frames.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from livecam.engine import Engine, to_input
from livecam.errors import LivecamError
from livecam.sinks import write_frames
from livecam.sources import Source, open_source
from livecam.timing import StageTimer
from livecam.types import Frame
from livecam.zoo import LoadedModel

log = logging.getLogger(__name__)

STEP_STAGES = ("preprocess", "forward", "backward", "cam", "render")


@dataclass
class Stat:
    median_ms: float
    p95_ms: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Stat:
        if not seconds:
            return cls(0.0, 0.0, 0)
        ms = sorted(s * 1000.0 for s in seconds)
        return cls(statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))], len(ms))


@dataclass
class BenchResult:
    config: dict
    machine: dict
    stages: dict[str, Stat] = field(default_factory=dict)  # livecam's step, per frame
    step: Stat | None = None  # livecam's whole step (preprocess to annotated frame), per frame
    explain: Stat | None = None  # forward + backward + CAM, per frame
    floor: Stat | None = None  # plain inference, per frame
    peer: Stat | None = None  # pytorch-grad-cam + show_cam_on_image, per frame
    pipeline_fps: float = 0.0
    pipeline_stages: dict[str, Stat] = field(default_factory=dict)
    peer_pipeline_fps: float | None = None  # decode + peer + encode, one after the other
    rss_mb: dict[str, float] = field(default_factory=dict)
    device_mb: dict[str, float] = field(default_factory=dict)

    def ratios(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.explain and self.floor and self.floor.median_ms:
            out["explain / floor"] = self.explain.median_ms / self.floor.median_ms
        if self.peer and self.step and self.step.median_ms:
            out["peer / livecam step"] = self.peer.median_ms / self.step.median_ms
        if self.peer_pipeline_fps and self.pipeline_fps:
            out["livecam pipeline / peer pipeline FPS"] = self.pipeline_fps / self.peer_pipeline_fps
        return out

    def to_json(self) -> str:
        data = asdict(self)
        data["ratios"] = self.ratios()
        return json.dumps(data, indent=2)

    def markdown(self) -> str:
        c, m = self.config, self.machine
        lines = [
            f"livecam bench: {c['model']} {c['method']} {c['precision']} batch {c['batch']} on "
            f"{m['device_name']}, {c['size'][0]}x{c['size'][1]} frames from {c['source']}, "
            f"{c['frames']} frames ({m['date']}); forward pass in {c.get('backend', 'torch')}; BatchNorm layers "
            f"folded into convolutions: {c.get('folded_batchnorms', 0)}",
            "",
            "| what | median ms | p95 ms |",
            "| --- | --- | --- |",
        ]
        for name, stat in self.stages.items():
            lines.append(f"| {name} | {stat.median_ms:.2f} | {stat.p95_ms:.2f} |")
        for name, stat in (("livecam explanation (forward + backward + CAM)", self.explain),
                           ("livecam step (preprocess to annotated frame)", self.step),
                           ("floor: plain inference", self.floor),
                           ("peer: pytorch-grad-cam GradCAM + show_cam_on_image", self.peer)):
            if stat is not None:
                lines.append(f"| {name} | {stat.median_ms:.2f} | {stat.p95_ms:.2f} |")
        lines += ["", f"End to end (decode, explain, overlay, encode; threaded): **{self.pipeline_fps:.1f} FPS**"]
        if self.peer_pipeline_fps:
            lines.append(f"Peer end to end (decode, peer, encode; serial): {self.peer_pipeline_fps:.1f} FPS")
        for name, value in self.ratios().items():
            lines.append(f"- {name}: {value:.2f}x")
        if self.rss_mb:
            lines.append("- host memory (RSS, MB): " + ", ".join(f"{k} {v:.0f}" for k, v in self.rss_mb.items()))
        if self.device_mb:
            lines.append("- device memory (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in self.device_mb.items()))
        return "\n".join(lines) + "\n"


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def machine_info(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "device_name": name if device.type == "cuda" else f"CPU {cpu or name}, {torch.get_num_threads()} threads",
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__, "opencv": cv2.__version__,
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
    }


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_frame(stage_sums: list[dict[str, float]], order: tuple[str, ...], batch: int) -> tuple[dict, Stat]:
    """Per-stage stats per frame from each step's summed stage times, and the explanation's total."""
    stages = {s: Stat.of([step[s] / batch for step in stage_sums]) for s in order if stage_sums and s in stage_sums[0]}
    explain = Stat.of([sum(step.get(s, 0.0) for s in ("forward", "backward", "cam")) / batch for step in stage_sums])
    return stages, explain


def _timed_step(device: torch.device, fn) -> dict[str, float]:  # noqa: ANN001 - fn(timer)
    timer = StageTimer(functools.partial(_sync, device) if device.type == "cuda" else None)
    fn(timer)
    return {stage: sum(times) for stage, times in timer.times.items()}


class Floor:
    """Plain inference of the engine's model (same precision and layout) on the same frames.

    On CUDA with graphs on, the forward pass is captured in a CUDA graph too, so the
    floor is graphed where the engine is. Calling it runs chunk ``i`` and returns
    its synchronized wall time.
    """

    def __init__(self, engine: Engine, chunks: list[list[np.ndarray]], graph: bool) -> None:
        model = engine.model
        self.module, self.device = model.module, model.device
        self.inputs = [to_input(c, model.preprocess, model.device, engine.channels_last).to(engine.dtype)
                       for c in chunks[:64]]
        self.graph = None
        if graph and self.device.type == "cuda":
            self.static = self.inputs[0].clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):
                    self.module(self.static)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph), torch.inference_mode():
                self.module(self.static)

    def __call__(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        if self.graph is not None:
            self.static.copy_(x)
        _sync(self.device)
        start = time.perf_counter()
        if self.graph is not None:
            self.graph.replay()
        else:
            with torch.inference_mode():
                self.module(x)
        _sync(self.device)
        return time.perf_counter() - start


def bench_step(engine: Engine, frames: list[np.ndarray], batch: int, warmup: int,
               graph: bool = True) -> tuple[dict, Stat, Stat, Stat]:
    """livecam's step, stage by stage and whole, and the floor, per frame.

    The floor and the step run in turns on each chunk of frames, so that a noisy
    neighbour slows both alike and their ratio holds.
    """
    device = engine.model.device
    chunks = [frames[i * batch:(i + 1) * batch] for i in range(len(frames) // batch)]
    floor = Floor(engine, chunks, graph)
    on_device = engine.device_step is not None

    def stages_of(chunk: list[np.ndarray], timer: StageTimer) -> None:
        if on_device:  # eager and synchronized per stage: the graphed step is timed whole below
            with timer("upload"):
                dev = engine.upload(chunk)
            out = engine.device_step.step(dev, timer)
            with timer("download"):
                engine.download(out.images)
            return
        explanation = engine.explain(chunk, timer)
        with timer("render"):
            for j, image in enumerate(chunk):
                engine.render(Frame(image, j, 0.0), explanation, j)

    sums, steps, floors = [], [], []
    for i in range(warmup + len(chunks)):
        chunk = chunks[i % len(chunks)]
        floor_s = floor(i)
        stage_sums = _timed_step(device, functools.partial(stages_of, chunk))
        _sync(device)
        start = time.perf_counter()
        engine.process_batch([Frame(image, j, 0.0) for j, image in enumerate(chunk)])
        _sync(device)
        if i >= warmup:
            steps.append((time.perf_counter() - start) / batch)
            floors.append(floor_s / batch)
            sums.append(stage_sums)
    order = ("upload", *STEP_STAGES, "download") if on_device else STEP_STAGES
    stages, explain = _per_frame(sums, order, batch)
    return stages, Stat.of(steps), explain, Stat.of(floors)


def bench_peer(model: LoadedModel, layer: str, frames: list[np.ndarray], warmup: int) -> Stat | None:
    """pytorch-grad-cam's GradCAM + show_cam_on_image on each frame, as its README shows."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.image import show_cam_on_image
    except ImportError:
        log.warning("pytorch-grad-cam is not installed (pip install grad-cam): no peer column")
        return None
    module = copy.deepcopy(model.module).float().to(memory_format=torch.contiguous_format).requires_grad_(True)
    mean, std = np.array(model.preprocess.mean), np.array(model.preprocess.std)
    height, width = model.preprocess.size
    times: list[float] = []
    with GradCAM(model=module, target_layers=[module.get_submodule(layer)]) as cam:
        for i in range(warmup + len(frames)):
            frame = frames[i % len(frames)]
            _sync(model.device)
            start = time.perf_counter()
            rgb = cv2.cvtColor(cv2.resize(frame, (width, height)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            x = torch.from_numpy(((rgb - mean) / std).astype(np.float32)).permute(2, 0, 1)[None].to(model.device)
            grayscale = cam(input_tensor=x, targets=None)[0]
            full = cv2.resize(grayscale, (frame.shape[1], frame.shape[0]))
            frame_rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            overlay = show_cam_on_image(frame_rgb, full, use_rgb=True)
            cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return Stat.of(times)


def bench_pipeline(engine: Engine, video: Path, batch: int) -> tuple[float, dict[str, Stat], dict[str, float]]:
    """The threaded pipeline on a real video file, writing a real mp4: the FPS a user sees."""
    from livecam.pipeline import run
    from livecam.sinks import VideoFileSink

    out = Path(tempfile.mkdtemp(prefix="livecam-bench-")) / "out.mp4"
    samples: dict[str, float] = {"start": rss_mb()}
    src: Source = open_source(str(video))
    total = src.frame_count or 0

    def sample(annotated) -> None:
        if annotated.frame.index == total // 10:
            samples["after 10% of frames"] = rss_mb()

    with src, VideoFileSink(out, fps=src.fps) as sink:
        report = run(src, engine, [sink], batch=batch, on_frame=sample)
    samples["end"] = rss_mb()
    out.unlink(missing_ok=True)
    out.parent.rmdir()
    return report.fps, {s: Stat.of(t) for s, t in report.stage_times.items() if t}, samples


def run_bench(
    model: LoadedModel,
    method: str = "gradcam",
    precision: str = "auto",
    batch: int = 1,
    source: str = "demo",
    size: tuple[int, int] | None = None,
    frames: int = 300,
    warmup: int = 20,
    peer: bool = True,
    graph: bool = True,
    renderer: str = "auto",
    fold_bn: bool = True,
) -> BenchResult:
    if frames < batch:
        raise LivecamError(f"--frames {frames} is fewer than one batch of {batch}")
    images, video = load_frames(source, size, frames)
    try:
        engine = Engine(model, method=method, precision=precision, graph=graph, renderer=renderer, fold_bn=fold_bn)
        config = {
            "graph": engine.device_step is not None and engine.device_step.graph,
            "model": model.name, "weights": model.weights, "method": method, "precision": str(engine.dtype)[6:],
            "batch": batch, "source": source, "size": [images[0].shape[1], images[0].shape[0]],
            "frames": frames, "warmup": warmup, "device": str(model.device), "layer": engine.explainer.layer,
            "folded_batchnorms": engine.folded, "backend": "torch",
        }
        result = BenchResult(config=config, machine=machine_info(model.device))
        step_stages, result.step, result.explain, result.floor = bench_step(engine, images, batch, warmup, graph)
        fps, stages, samples = bench_pipeline(engine, video, batch)
        result.pipeline_fps, result.pipeline_stages, result.rss_mb = fps, stages, samples
        # decode and encode as the pipeline measured them, around the step's own stages
        result.stages = {"decode": stages["decode"], **step_stages, "encode": stages["write"]}
        if model.device.type == "cuda":
            result.device_mb = {"peak allocated": torch.cuda.max_memory_allocated(model.device) / 1e6,
                                "allocated at end": torch.cuda.memory_allocated(model.device) / 1e6}
        engine.close()
        if peer:
            result.peer = bench_peer(model, result.config["layer"], images[: min(len(images), 100)], min(warmup, 5))
            if result.peer is not None and "decode" in stages and "write" in stages:
                per_frame = stages["decode"].median_ms + result.peer.median_ms + stages["write"].median_ms
                result.peer_pipeline_fps = 1000.0 / per_frame
        return result
    finally:
        video.unlink(missing_ok=True)


def plot(result: BenchResult, path: Path) -> None:
    """A bar chart of the per-frame times (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LivecamError("--plot needs matplotlib: pip install matplotlib") from None
    bars = {f"livecam {k}": v.median_ms for k, v in result.stages.items()}
    for name, stat in (("floor (plain inference)", result.floor), ("livecam explanation", result.explain),
                       ("peer (pytorch-grad-cam)", result.peer)):
        if stat is not None:
            bars[name] = stat.median_ms
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.2))
    colours = ["#4477aa" if k.startswith("livecam") else "#999999" if k.startswith("floor") else "#cc6677"
               for k in bars]
    ax.barh(list(bars), list(bars.values()), color=colours)
    ax.invert_yaxis()
    ax.set_xlabel("median ms per frame")
    c = result.config
    ax.set_title(f"{c['model']} {c['method']} {c['precision']}, {c['size'][0]}x{c['size'][1]}, "
                 f"{result.machine['device_name']}\nend to end {result.pipeline_fps:.1f} FPS", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
