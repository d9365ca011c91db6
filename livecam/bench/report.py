"""The ``livecam bench`` report: latency statistics, the result of one run, and the JSON that carries it.

A report is written as JSON (schema ``livecam-bench/2``, checked by ``bench/schema.json``
and documented in benchmarks/README.md) so that ``livecam bench --compare A.json B.json``
lines up results from different machines. The TypedDicts below are that JSON's records,
key for key; :class:`BenchResult` is the run in memory, with :class:`Stat` for each time.
No PyTorch, no engine: reading and comparing reports needs neither.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from livecam.errors import LivecamError, option

SCHEMA = "livecam-bench/2"
SCHEMA_FILE = Path(__file__).with_name("schema.json")


class StatDict(TypedDict):
    """A :class:`Stat` in the JSON report."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    n: int


class _TargetConfigRequired(TypedDict):
    engine: str  # "onnxruntime" or "torch"
    runtime: str  # what ran, for people: "ONNX Runtime CUDA (cuda:0) in fp16", "PyTorch 2.x on cpu"
    precision: str
    layer: str
    input_size: list[int]  # [height, width] of the model's input


class TargetConfig(_TargetConfigRequired, total=False):
    """What the timed engine says of itself (each engine's own keys are optional)."""

    provider: str  # ONNX Runtime: the execution provider in use
    input: str  # ONNX Runtime: "tensor" or "frames"
    graph_file: str  # ONNX Runtime
    graph: bool  # PyTorch: the step replayed as a CUDA graph
    folded_batchnorms: int  # PyTorch


class BenchConfig(TargetConfig):
    """What was measured: the run's options, and the engine's :class:`TargetConfig`."""

    model: str
    method: str
    batch: int
    source: str
    frame_size: list[int]  # [width, height] of the frames
    frames: int
    warmup: int
    device: str  # --device as given


class Jetson(TypedDict):
    model: str
    l4t: list[str] | None
    power_mode: str | None  # nvpmodel -q


class Versions(TypedDict):
    livecam: str
    onnxruntime: str | None
    torch: str | None
    opencv: str
    numpy: str


class Machine(TypedDict):
    """The machine a report was measured on."""

    device: str  # the GPU and driver, the Jetson board, or the CPU
    cpu: str
    cpu_count: int | None
    gpus: list[str]
    gpu_driver: str | None
    jetson: Jetson | None
    os: str
    python: str
    date: str
    versions: Versions


class PipelineResult(TypedDict, total=False):
    """The threaded pipeline on a real video, in memory (empty until it ran)."""

    fps: float
    frames: int
    seconds: float
    latency: Stat  # each frame, from leaving the decoder to being handed to the sinks
    stages: dict[str, Stat]


class PipelineReport(TypedDict, total=False):
    """:class:`PipelineResult` in the JSON report."""

    fps: float
    frames: int
    seconds: float
    latency: StatDict
    stages: dict[str, StatDict]


class Memory(TypedDict, total=False):
    rss_mb: dict[str, float]  # this process's resident memory, sampled at points of the run
    device_mb: dict[str, float]  # the GPU's, where PyTorch runs on one


class BenchReport(TypedDict):
    """The JSON report, as :meth:`BenchResult.to_dict` writes it."""

    schema: str
    config: BenchConfig
    machine: Machine
    label: str
    stages: dict[str, StatDict]
    step: StatDict | None
    explanation: StatDict | None
    floor: StatDict | None
    peer: StatDict | None
    pipeline: PipelineReport
    startup_s: list[float]
    memory: Memory
    ratios: dict[str, float]
    peer_pipeline_fps: float | None
    startup_p50_s: float | None


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
    def from_dict(cls, data: Mapping[str, Any]) -> Stat:
        """A stat read from a report (JSON, whose values can be anything until checked)."""
        return cls(**{k: data[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "n")})

    def to_dict(self) -> StatDict:
        return {"p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms, "mean_ms": self.mean_ms,
                "n": self.n}


def _stat_dict(stat: Stat | None) -> StatDict | None:
    return None if stat is None else stat.to_dict()


def _pipeline_report(pipeline: PipelineResult) -> PipelineReport:
    report = PipelineReport()
    if "fps" in pipeline:
        report["fps"] = pipeline["fps"]
    if "frames" in pipeline:
        report["frames"] = pipeline["frames"]
    if "seconds" in pipeline:
        report["seconds"] = pipeline["seconds"]
    if "latency" in pipeline:
        report["latency"] = pipeline["latency"].to_dict()
    if "stages" in pipeline:
        report["stages"] = {k: v.to_dict() for k, v in pipeline["stages"].items()}
    return report


def _pipeline_result(data: Mapping[str, Any]) -> PipelineResult:
    pipeline = PipelineResult()
    if "fps" in data:
        pipeline["fps"] = data["fps"]
    if "frames" in data:
        pipeline["frames"] = data["frames"]
    if "seconds" in data:
        pipeline["seconds"] = data["seconds"]
    if data.get("latency"):
        pipeline["latency"] = Stat.from_dict(data["latency"])
    pipeline["stages"] = {k: Stat.from_dict(v) for k, v in (data.get("stages") or {}).items()}
    return pipeline


@dataclass
class BenchResult:
    """One ``livecam bench`` run; ``to_json`` writes schema ``livecam-bench/2``."""

    config: BenchConfig
    machine: Machine
    label: str = ""
    stages: dict[str, Stat] = field(default_factory=dict)  # per frame, single stream
    step: Stat | None = None  # frame in -> annotated frame out, per frame
    explanation: Stat | None = None  # the explanation call alone, whole, per frame
    floor: Stat | None = None  # plain inference of the same model, whole, per frame
    peer: Stat | None = None  # pytorch-grad-cam + show_cam_on_image, per frame
    pipeline: PipelineResult = field(default_factory=PipelineResult)  # fps, frames, seconds, latency, stages
    startup_s: list[float] = field(default_factory=list)  # command -> first annotated frame, per fresh process
    memory: Memory = field(default_factory=Memory)  # rss_mb and device_mb samples

    def ratios(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.explanation and self.floor and self.floor.p50_ms:
            out["explanation / plain inference (p50)"] = self.explanation.p50_ms / self.floor.p50_ms
        if self.peer and self.step and self.step.p50_ms:
            out["peer / livecam step (p50)"] = self.peer.p50_ms / self.step.p50_ms
        peer_fps = self.peer_pipeline_fps()
        fps = self.pipeline.get("fps")
        if peer_fps and fps:
            out["livecam pipeline / peer pipeline (FPS)"] = fps / peer_fps
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

    def to_dict(self) -> BenchReport:
        return {"schema": SCHEMA, "config": self.config, "machine": self.machine, "label": self.label,
                "stages": {k: v.to_dict() for k, v in self.stages.items()}, "step": _stat_dict(self.step),
                "explanation": _stat_dict(self.explanation), "floor": _stat_dict(self.floor),
                "peer": _stat_dict(self.peer), "pipeline": _pipeline_report(self.pipeline),
                "startup_s": list(self.startup_s), "memory": self.memory, "ratios": self.ratios(),
                "peer_pipeline_fps": self.peer_pipeline_fps(), "startup_p50_s": self.startup_p50_s()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchResult:
        """A result read from a report (JSON, whose values can be anything until checked)."""

        def stat(value: Mapping[str, Any] | None) -> Stat | None:
            return Stat.from_dict(value) if value else None

        pipeline = _pipeline_result(data.get("pipeline") or {})
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
        latency = self.pipeline.get("latency")
        if latency:
            rows.append(("pipeline latency: decoded -> handed to the sinks", latency))
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
        for name, samples in (("rss_mb", self.memory.get("rss_mb")), ("device_mb", self.memory.get("device_mb"))):
            if samples:
                lines.append(f"- {name.replace('_mb', '')} memory (MB): "
                             + ", ".join(f"{k} {v:.0f}" for k, v in samples.items()))
        return "\n".join(lines) + "\n"


def load_result(path: Path) -> BenchResult:
    """A JSON report of ``livecam bench``, checked against the schema's required keys."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LivecamError(f"cannot read {path} as a livecam bench report ({exc}); give JSON files written by "
                           f"'livecam bench {option('json')}'") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema", "none") if isinstance(data, dict) else type(data).__name__
        raise LivecamError(f"{path} is not a livecam bench report of schema {SCHEMA} (it says {found}); "
                           f"run livecam bench {option('json')} again with this livecam")
    try:
        result = BenchResult.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise LivecamError(f"{path} lacks {exc} of schema {SCHEMA}; run livecam bench {option('json')} again") from None
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
