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


@dataclass
class Annotated:
    """An output frame: the annotated image, the explanation and where the time went.

    ``explanation`` is the engine's own: :class:`livecam.Explanation` (torch
    tensors) from the PyTorch engine, :class:`ArrayExplanation` from the ONNX
    Runtime engine. Sinks and the pipeline read only the image, the frame and
    the timings, and, whatever the engine, ``labels`` and ``maps``.
    """

    image: np.ndarray  # BGR uint8, the source frame's size (panels, guided view: tiled, as wide as the frame)
    explanation: Any  # of the whole batch the frame was in
    frame: Frame
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, per frame
    index: int = 0  # the frame's row in explanation (PyTorch panels: the row of its best class)
    labels: list[Label] = field(default_factory=list)  # the frame's most probable classes, best first
    maps: np.ndarray | None = None  # (K, h, w) float32 in [0, 1]: the maps drawn, at the layer's resolution
    map_classes: list[int] = field(default_factory=list)  # the class index of each of ``maps``
    settings: dict[str, Any] | None = None  # live controls: the view settings, on the first frame drawn with them


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
