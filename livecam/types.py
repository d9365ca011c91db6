"""The data that crosses stage boundaries: source -> engine -> sinks. No PyTorch here.

Stages talk only through these types: a source yields :class:`Frame`, an
engine turns frames into :class:`Annotated` frames, and the sinks and the
pipeline read those. :class:`Preprocess` says how a frame becomes a model's
input, for both engines. :class:`RunReport` is what a run did; it lives here,
not in the pipeline, so that :class:`livecam.errors.ModelError` can carry one
without importing the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("decode", "preprocess", "explain", "render", "write")  # a run's stages, as its report times them


@dataclass(frozen=True)
class Preprocess:
    """How a frame becomes the model's input: resize the whole frame, RGB, normalize."""

    size: tuple[int, int] = (224, 224)  # (height, width)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class Label:
    """A class as drawn on a frame: its name, probability, whether its map is shown, and its index."""

    name: str
    score: float
    explained: bool = False
    index: int = -1  # the class index in the model's output; -1 for a caption that is not one class

    def text(self) -> str:
        mark = "> " if self.explained else "  "
        return f"{mark}{self.name} {self.score * 100:.1f}%"


@dataclass
class Frame:
    """One frame: BGR uint8 (H, W, 3), its index, and its time in seconds.

    ``timestamp`` is the position in the file for files and images (the
    decoder's presentation time, from the first frame), and the capture time
    (``time.monotonic()``) for live sources. ``duration`` is how long the frame
    shows, until the next one (files and images; None for live sources).
    """

    image: np.ndarray
    index: int
    timestamp: float
    received: float = 0.0  # time.perf_counter() when the pipeline took it from the source (for its latency)
    # set by the pipeline, for the per-frame log: seconds to decode, live frames dropped before this one was
    # taken, and seconds from leaving the decoder to reaching the sinks
    decode: float = 0.0
    dropped: int = 0
    latency: float = 0.0
    duration: float | None = None  # seconds until the next frame (see above)


@dataclass(frozen=True)
class FrameTime:
    """What an engine expects one frame to cost when its method is slow (Score-CAM): say so before the run."""

    seconds: float  # at most, per frame, measured on a few of the method's passes
    passes: int  # forward passes per frame
    layer: str  # the target layer, whose channels the passes mask
    device: str


@dataclass
class ArrayExplanation:
    """An explained batch as NumPy arrays: what an exported graph gives ONNX Runtime.

    Row i is sample i; column j its j-th explained class (the K most probable,
    best first, or one fixed class).
    """

    cams: np.ndarray  # (N, K, h, w) float32 in [0, 1], at the target layer's resolution
    classes: np.ndarray  # (N, K) int64
    scores: np.ndarray  # (N, K) float32: the softmax probabilities of ``classes``
    logits: np.ndarray  # (N, C) float32
    method: str
    layer: str


@dataclass(frozen=True)
class Speed:
    """The run's speed as the frame's readout says it, and ``/status`` repeats it: one set of figures.

    ``fps``: frames delivered to the sinks per second; ``engine_ms``: the
    engine's time per frame (its step, divided by the frames in it);
    ``latency_ms``: from the decoded frame (for paced playback, from its
    release at its time) to the sinks; ``dropped``: live frames the engine had
    no time for. Each is a moving average over the frames before this one.
    """

    fps: float
    engine_ms: float
    latency_ms: float
    dropped: int = 0

    def text(self) -> str:
        text = f"{self.fps:.1f} FPS  engine {self.engine_ms:.0f} ms  latency {self.latency_ms:.0f} ms"
        return f"{text}  {self.dropped} dropped" if self.dropped else text


@dataclass
class Annotated:
    """An output frame: the annotated image, the explanation and where the time went.

    ``explanation`` is the engine's own: :class:`livecam.Explanation` (torch
    tensors) from the PyTorch engine, :class:`ArrayExplanation` from the ONNX
    Runtime engine. Sinks and the pipeline read only the image, the frame and
    the timings, and, whatever the engine, ``labels`` and ``maps``.

    With ``--smooth`` (:mod:`livecam.smooth`) ``labels``, ``maps`` and ``map_classes``
    are the smoothed ones, as drawn, and ``raw_labels``, ``raw_maps`` and
    ``raw_map_classes`` the frame's own, as explained. Without smoothing the raw
    ones are the same objects (left out, they are set so), not copies:
    :attr:`smoothed` tells the two cases apart. With two
    models side by side (:class:`livecam.engines.compare.CompareEngine`),
    ``sides`` holds each side's own frame (its half of ``image``, labels, maps,
    timings); the frame's own labels and maps are then the first side's.
    """

    image: np.ndarray  # BGR uint8, the source frame's size (panels, guided view: tiled, as wide as the frame)
    explanation: Any  # of the whole batch the frame was in
    frame: Frame
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, per frame
    index: int = 0  # the frame's row in explanation (PyTorch panels: the row of its best class)
    labels: list[Label] = field(default_factory=list)  # the frame's most probable classes, best first
    maps: np.ndarray | None = None  # (K, h, w) float32 in [0, 1]: the maps drawn, at the layer's resolution
    map_classes: list[int] = field(default_factory=list)  # the class index of each of ``maps``
    raw_labels: list[Label] = field(default_factory=list)  # the frame's own labels, before smoothing
    raw_maps: np.ndarray | None = None  # its own maps, before smoothing
    raw_map_classes: list[int] = field(default_factory=list)  # the class of each of ``raw_maps``
    speed: Speed | None = None  # the figures of the readout drawn on it (set by the pipeline; None: none yet)
    settings: dict[str, Any] | None = None  # live controls: the view settings, on the first frame drawn with them
    sides: list[Annotated] = field(default_factory=list)  # --compare: the two sides, left first; else empty

    def __post_init__(self) -> None:
        """Raw ones left out are the drawn ones (no smoothing): the same objects."""
        if not self.raw_labels:
            self.raw_labels = self.labels
        if self.raw_maps is None:
            self.raw_maps = self.maps
        if not self.raw_map_classes:
            self.raw_map_classes = self.map_classes

    @property
    def smoothed(self) -> bool:
        """Whether the drawn maps are smoothed ones, not the frame's own (``raw_maps``)."""
        return self.raw_maps is not self.maps


@dataclass
class RunReport:
    """What a run did: frames, wall time, per-stage timings, drops, how it ended."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0  # live sources: frames replaced by a newer one before the engine got to them
    stage_times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latencies: list[float] = field(default_factory=list)  # per frame: from leaving the decoder to the sinks
    interrupted: bool = False  # Ctrl-C or SIGTERM
    stopped_by_user: bool = False  # q, Esc, or the window closed
    skipped: int = 0  # frames the engine failed on, skipped with on_error="skip"
    error: str | None = None  # why the run stopped on a model failure (on_error="stop")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def median_ms(self, stage: str) -> float:
        times = self.stage_times.get(stage) or [0.0]
        return median(times) * 1000.0
