"""Two models side by side (``--compare``): one engine that holds two and explains every batch with both.

The pipeline stays one pipeline: :class:`CompareEngine` keeps the one Engine
contract, so the loop, the sinks and ``annotate`` run it as they run any
engine. Each batch reaches both sides whole, so each side's classes and maps
are the ones that side gives alone on the same frames; each side is then drawn
on the frame scaled to half its width (:func:`livecam.render.panel_size`), with
its own top classes, map, name and, in a live run, its own step time, and the
two are tiled as wide as the frame, as panels are. The output frame's labels
and maps are the left side's; :attr:`Annotated.sides <livecam.types.Annotated.sides>`
holds both, for the sinks that record them (the per-frame log, the saved maps).

Each side is an ordinary engine from :func:`livecam.engines.launch.open_engine`:
either engine, a zoo model or a ``.onnx`` graph. Where the first side can give
both explanations from one forward pass (:meth:`Engine.explain_beside
<livecam.engines.base.Engine.explain_beside>`: the PyTorch engine, one load of a
model explained with two methods at one layer; the ONNX Runtime engine, one graph
that holds both methods), it does. No PyTorch here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from livecam.engines.base import AnyEngine, Engine
from livecam.preprocess import downscale
from livecam.render import draw_text_box, panel_size, tile
from livecam.types import Annotated, Frame, FrameTime, Label

# the settings of the second side, as named in messages (the CLI shows them as --compare, --compare-weights, ...)
SETTINGS = {"model": "compare", "weights": "compare_weights", "method": "compare_method", "layer": "compare_layer"}


@dataclass(frozen=True)
class CompareOptions:
    """The second side of a run side by side; ``None``: as the first side (see :func:`livecam.engines.launch.
    compare_options`)."""

    model: str | None = None  # a zoo name or a .onnx graph; None: the first side's model
    weights: str | None = None
    method: str | None = None
    layer: str | None = None

    @property
    def given(self) -> list[str]:
        """The settings given, by their names in messages (compare, compare_weights, ...)."""
        return [SETTINGS[name] for name in SETTINGS if getattr(self, name) is not None]


class CompareEngine(Engine[tuple[Any, Any], tuple[Any, Any]]):
    """Explain each batch with two engines and tile their frames side by side, left first.

    Args:
        first, second: the two sides' engines (either kind); closing this engine closes both.
        names: what each side's corner says it is (e.g. ``efficientnet_lite0 gradcam``).

    Example::

        >>> left, right = open_engine(EngineOptions()).engine, open_engine(EngineOptions(model="mobilenet_v2")).engine
        >>> with CompareEngine(left, right, ("lite0", "mobilenet_v2")) as engine:
        ...     out = engine.process(frame)
        >>> [side.labels[0].name for side in out.sides]
    """

    def __init__(self, first: AnyEngine, second: AnyEngine, names: Sequence[str] = ("", "")) -> None:
        self.sides: tuple[AnyEngine, AnyEngine] = (first, second)
        self.annotator = first.annotator  # the view the live controls read; they set each side's (drawn_by)
        self.names = (names[0], names[1])
        self._step_s: list[float | None] = [None, None]  # each side's step time, averaged (for its corner)

    @property
    def smooth_s(self) -> float:
        """Both sides' smoothing time constant (each side smooths its own maps)."""
        return self.sides[0].smooth_s

    @smooth_s.setter
    def smooth_s(self, value: float) -> None:
        for side in self.sides:
            side.smooth_s = value

    def reset_smoothing(self) -> None:
        for side in self.sides:
            side.reset_smoothing()

    @property
    def drawn_by(self) -> tuple[AnyEngine, AnyEngine]:
        """Both sides: the live controls' colour map, opacity, rank and ``--smooth`` apply to each."""
        return self.sides

    @property
    def method(self) -> str:
        """The left side's method (the live controls do not switch a compared run's methods)."""
        return self.sides[0].method

    @property
    def max_rank(self) -> int:
        """The ranks both sides explain: each side shows its own k-th most probable class."""
        return min(side.max_rank for side in self.sides)

    @property
    def description(self) -> str:
        return " | ".join(side.description for side in self.sides)

    @property
    def class_names(self) -> Sequence[str]:
        """The left side's class names (each side's frames are labelled with its own)."""
        return self.sides[0].class_names

    @property
    def layer(self) -> str:
        """The left side's layer (the right side's is ``engine.sides[1].layer``)."""
        return self.sides[0].layer

    @property
    def panel_count(self) -> int:
        return 1

    def prepare(self, images: list[np.ndarray]) -> tuple[Any, Any]:
        return self.sides[0].prepare(images), self.sides[1].prepare(images)

    def run_prepared(self, x: tuple[Any, Any]) -> tuple[Any, Any]:
        first, second = self.sides
        pair = first.explain_beside(second, x[0])
        return pair if pair is not None else (first.run_prepared(x[0]), second.run_prepared(x[1]))

    def render(self, frame: Frame, explanation: tuple[Any, Any], i: int = 0, readout: str | None = None,
               labels: list[Label] | None = None) -> np.ndarray:
        """Both sides of sample ``i``, each drawn on the frame at half its width, tiled; ``labels`` are ignored
        (each side draws its own)."""
        small = self._small(frame)
        images = [side.render(small, part, i) for side, part in zip(self.sides, explanation, strict=True)]
        for j, image in enumerate(images):
            self._caption(image, j, readout, None)
        return tile(images)

    def annotated(self, explanation: tuple[Any, Any], frame: Frame, i: int = 0,
                  readout: str | None = None) -> Annotated:
        """Sample ``i`` with both sides drawn and kept in ``sides``; its labels and maps are the left side's."""
        small = self._small(frame)
        sides = [side.annotated(part, small, i) for side, part in zip(self.sides, explanation, strict=True)]
        for j, side in enumerate(sides):
            self._caption(side.image, j, readout, None)
        return self._joined(frame, sides)

    def process_batch(self, frames: list[Frame], readout: str | None = None) -> list[Annotated]:
        """Explain the frames with each side (from one forward pass where the engines can share it), draw each
        on the frames at half width, tile them; timings per frame, each side's its own (in ``sides``; a shared
        pass is the first side's) and the frame's their sums."""
        if len({f.image.shape for f in frames}) > 1:  # a batch has one frame size (a folder of images may not)
            return [out for f in frames for out in self.process_batch([f], readout)]
        images = [f.image for f in frames]
        n = len(frames)
        first, second = self.sides
        t0 = time.perf_counter()
        x = first.prepare(images)
        t1 = time.perf_counter()
        pair = first.explain_beside(second, x)
        t2 = time.perf_counter()
        if pair is not None:  # one pass for both: the first side's time; the second side's step waits for it too
            explanations = list(pair)
            times = [((t1 - t0) / n, (t2 - t1) / n), (0.0, 0.0)]
            waits = [0.0, (t2 - t0) / n]
        else:
            explanations = [first.run_prepared(x)]
            t2 = time.perf_counter()
            y = second.prepare(images)
            t3 = time.perf_counter()
            explanations.append(second.run_prepared(y))
            t4 = time.perf_counter()
            times = [((t1 - t0) / n, (t2 - t1) / n), ((t3 - t2) / n, (t4 - t3) / n)]
            waits = [0.0, 0.0]
        small = [self._small(f) for f in frames]
        drawn: list[list[Annotated]] = []
        for j, (side, explanation) in enumerate(zip(self.sides, explanations, strict=True)):
            start = time.perf_counter()
            outs = [side.annotated(explanation, s, i) for i, s in enumerate(small)]
            render = (time.perf_counter() - start) / n
            step = waits[j] + sum(times[j]) + render
            seen = self._step_s[j]
            self._step_s[j] = step if seen is None else 0.9 * seen + 0.1 * step
            for out in outs:
                out.timings = {"preprocess": times[j][0], "explain": times[j][1], "render": render}
                self._caption(out.image, j, readout, self._step_s[j])
            drawn.append(outs)
        results = []
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            out = self._joined(frame, [drawn[0][i], drawn[1][i]])
            tiled = time.perf_counter() - start
            out.timings = {stage: sum(side.timings[stage] for side in out.sides) for stage in out.sides[0].timings}
            out.timings["render"] += tiled
            results.append(out)
        return results

    def _small(self, frame: Frame) -> Frame:
        """The frame scaled to one side's size: half the width, the aspect kept (as two panels are)."""
        size = panel_size((frame.image.shape[1], frame.image.shape[0]), 2)
        return replace(frame, image=downscale(frame.image, size))

    def _caption(self, image: np.ndarray, j: int, readout: str | None, step_s: float | None) -> None:
        """Side ``j``'s corner: its name and, in a live run (a ``readout`` given), its own step time; the left
        side adds the run's readout. Archives get no timings, so that a rerun draws the same frames."""
        line = self.names[j]
        if readout is not None and step_s is not None:
            line = f"{line}  {step_s * 1000:.1f} ms".strip()
        lines = [text for text in (line, readout if j == 0 else None) if text]
        draw_text_box(image, lines, "bottom-left")

    @staticmethod
    def _joined(frame: Frame, sides: list[Annotated]) -> Annotated:
        for side in sides:
            side.frame = frame
        left = sides[0]
        return Annotated(tile([side.image for side in sides]), left.explanation, frame, {}, left.index,
                         left.labels, left.maps, left.map_classes, raw_labels=left.raw_labels,
                         raw_maps=left.raw_maps, raw_map_classes=left.raw_map_classes, sides=sides)

    def expected_frame_time(self) -> FrameTime | None:
        """What a slow side (Score-CAM) costs a frame: both sides' costs added, where either is slow."""
        costs = [cost for cost in (side.expected_frame_time() for side in self.sides) if cost is not None]
        if not costs:
            return None
        return replace(costs[0], seconds=sum(cost.seconds for cost in costs), passes=sum(c.passes for c in costs))

    def close(self) -> None:
        """Close both sides (the second first), also when one fails to close."""
        try:
            self.sides[1].close()
        finally:
            self.sides[0].close()
