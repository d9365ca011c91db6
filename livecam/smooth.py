"""Steady explanations on video (``--smooth SECONDS``): maps, scores and the explained class over time. No PyTorch.

Each frame is explained on its own, so on video the map flickers and the top class
flips between near ties. :class:`Smoother` steadies both, frame by frame, in the
order the frames were taken:

- the maps and the class probabilities are exponential moving averages weighted by
  the frames' timestamps: ``m += alpha * (x - m)`` with ``alpha = 1 - exp(-dt / tau)``
  (:func:`ema_alpha`), so a time constant ``tau`` means the same on a 10 fps camera
  and a 60 fps file. The maps are averaged at the layer's resolution, each class's
  on its own (panels too);
- the explained class changes with hysteresis (:class:`Hysteresis`): a new leader of
  the smoothed probabilities replaces the one shown only after it has led for
  ``tau`` seconds, on a frame whose maps include it;
- a scene cut (:func:`histogram_distance` of consecutive frames over
  :data:`CUT_THRESHOLD`), a step back in time and a change of the explained class
  restart the averages, so no map of one scene is drawn over the next.

``tau = 0`` is no smoothing: every output equals its input. Everything here is
pure NumPy and OpenCV; the engines call :meth:`Smoother.step` between explaining
and drawing, so what is drawn is what is logged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from livecam.errors import LivecamError, option

# A cut: half the L1 distance of consecutive frames' colour histograms (0: the same colours, 1: none shared).
# Measured on real clips (benchmarks/results/scene-cuts.md): within a shot consecutive frames reach at most 0.133
# (bikes, a fast pan), the real cuts of bikes are 0.255 and up, splices of two different clips 0.474 and up.
CUT_THRESHOLD = 0.2
HISTOGRAM_BINS = 8  # per channel: 8 x 8 x 8 colour bins
HISTOGRAM_SIZE = 64  # the frame is shrunk to this width first (the histogram is of colours, not detail)


def ema_alpha(dt: float, tau: float) -> float:
    """The weight of a new sample ``dt`` seconds after the last, for a time constant ``tau``:
    ``1 - exp(-dt / tau)``; 1 (the new sample alone) when ``tau`` is 0 or ``dt`` is infinite."""
    if tau < 0 or dt < 0 or math.isnan(dt) or math.isnan(tau):
        raise ValueError(f"dt and tau must be >= 0, not dt={dt}, tau={tau}")
    if tau == 0 or math.isinf(dt):
        return 1.0
    return 1.0 - math.exp(-dt / tau)


def ema(previous: np.ndarray | None, sample: np.ndarray, alpha: float) -> np.ndarray:
    """One step of the moving average: ``previous + alpha * (sample - previous)``; the sample itself to start."""
    if previous is None:
        return np.array(sample, dtype=np.float32, copy=True)
    out: np.ndarray = (previous + np.float32(alpha) * (sample - previous)).astype(np.float32)
    return out


def histogram(image: np.ndarray) -> np.ndarray:
    """A BGR uint8 frame's colour histogram (8 x 8 x 8 bins, of a 64-pixel-wide copy), summing to 1."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (HISTOGRAM_SIZE, max(1, round(h * HISTOGRAM_SIZE / max(w, 1)))),
                       interpolation=cv2.INTER_AREA)
    bins = [HISTOGRAM_BINS] * 3
    hist = cv2.calcHist([small], [0, 1, 2], None, bins, [0, 256] * 3).ravel()
    total = float(hist.sum())
    return hist / total if total > 0 else hist


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two normalized histograms: 0 for the same colours, 1 for none in common."""
    return 0.5 * float(np.abs(a - b).sum())


class Hysteresis:
    """The explained class: it changes only once another class has led for ``hold`` seconds.

    :meth:`step` takes the current leader, the seconds since the last step and the classes
    whose maps this frame has; the held class moves to the leader when the leader has led
    for at least ``hold`` seconds (counted from the frame it took the lead) and its map is
    there. ``hold = 0`` follows the leader at once (where its map is there).
    """

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.held: int | None = None
        self.challenger: int | None = None
        self.lead = 0.0  # seconds the challenger has led

    def reset(self) -> None:
        self.held, self.challenger, self.lead = None, None, 0.0

    def step(self, leader: int, dt: float, available: Sequence[int]) -> tuple[int | None, bool]:
        """(the class to explain, whether it changed on this step); None until a class with a map leads."""
        if self.held is None:
            if leader in available:
                self.held = leader
                return leader, True
            return None, False
        if leader == self.held:
            self.challenger, self.lead = None, 0.0
            return self.held, False
        if leader != self.challenger:
            self.challenger, self.lead = leader, 0.0
        else:
            self.lead += dt
        if self.lead >= self.hold and leader in available:
            self.held, self.challenger, self.lead = leader, None, 0.0
            return leader, True
        return self.held, False


@dataclass
class Steady:
    """One frame as the smoother hands it on to be drawn."""

    probs: np.ndarray  # (C,) the smoothed class probabilities
    maps: np.ndarray  # (K, h, w) float32 in [0, 1]: the smoothed maps to draw
    classes: list[int]  # the class of each map (the held class first, or each panel's class)
    cut: bool  # the averages restarted on this frame (the first frame, a scene cut, a step back in time)


class Smoother:
    """The state of ``--smooth SECONDS`` over one video: call :meth:`step` on each frame, in order.

    Args:
        seconds: the time constant tau, in seconds (0: no smoothing). It may be changed between frames.
        panels: the frames' maps are panels (each class shown in its own): each is averaged on its own
            and shown in the order it came, with no hysteresis.
        fixed: the maps are of one class the user chose (``--class``): no hysteresis, one average.
        cut_threshold: the :func:`histogram_distance` of consecutive frames at or above which a scene cut
            restarts the averages.
    """

    def __init__(self, seconds: float, panels: bool = False, fixed: bool = False,
                 cut_threshold: float = CUT_THRESHOLD) -> None:
        self.panels, self.fixed, self.cut_threshold = panels, fixed, cut_threshold
        self._seconds = 0.0
        self.seconds = seconds
        self.hysteresis = Hysteresis(self.seconds)
        self.reset()

    @property
    def seconds(self) -> float:
        return self._seconds

    @seconds.setter
    def seconds(self, value: float) -> None:
        self._seconds = check_seconds(value)
        if hasattr(self, "hysteresis"):
            self.hysteresis.hold = self._seconds

    def reset(self) -> None:
        """Forget the past: the next frame starts every average."""
        self.last_time: float | None = None
        self.last_histogram: np.ndarray | None = None
        self.probs: np.ndarray | None = None
        self.averages: dict[int, tuple[np.ndarray, float]] = {}  # class -> (its map's average, when updated)
        self.hysteresis.reset()

    def step(self, timestamp: float, probs: np.ndarray, maps: np.ndarray, classes: Sequence[int],
             image: np.ndarray | None = None) -> Steady:
        """Smooth one frame: its time in seconds, its (C,) probabilities, its (K, h, w) maps of ``classes``
        (best first) and, for the scene-cut test, its BGR image."""
        classes = [int(c) for c in classes]
        if self.seconds == 0:  # off: the frame as it was explained (and a fresh start when it is turned on)
            self.reset()
            shown = len(classes) if self.panels or self.fixed else 1
            return Steady(np.asarray(probs, dtype=np.float32), np.asarray(maps[:shown], dtype=np.float32),
                          classes[:shown], False)
        hist = histogram(image) if image is not None and self.cut_threshold < 1 else None
        cut = self._is_cut(timestamp, hist)
        if cut:
            self.reset()
        dt = 0.0 if self.last_time is None else timestamp - self.last_time
        self.last_time, self.last_histogram = timestamp, hist
        self.probs = ema(self.probs, np.asarray(probs, dtype=np.float32), ema_alpha(dt, self.seconds))
        if self.panels or self.fixed:
            out = [self._average(c, m, timestamp) for c, m in zip(classes, maps, strict=True)]
            return Steady(self.probs, np.stack(out), classes, cut)
        held, changed = self.hysteresis.step(int(np.argmax(self.probs)), dt, classes)
        if held is None:  # no leader with a map yet (only when the maps are not of the top class): show the raw
            held = classes[0]
            self.hysteresis.held = held
            changed = True
        if changed:
            self.averages.pop(held, None)  # a new explained class starts its own average
        if held in classes:
            average = self._average(held, maps[classes.index(held)], timestamp)
        else:  # the held class has no map on this frame (it fell out of the graph's top K): keep its last average
            average = self.averages[held][0]
        self.averages = {held: self.averages[held]}
        return Steady(self.probs, average[None], [held], cut)

    def _average(self, cls: int, sample: np.ndarray, timestamp: float) -> np.ndarray:
        previous = self.averages.get(cls)
        if previous is None:
            average = ema(None, sample, 1.0)
        else:
            average = ema(previous[0], sample, ema_alpha(max(0.0, timestamp - previous[1]), self.seconds))
        self.averages[cls] = (average, timestamp)
        return average

    def _is_cut(self, timestamp: float, hist: np.ndarray | None) -> bool:
        if self.last_time is None:
            return True
        if timestamp < self.last_time:
            return True
        if hist is not None and self.last_histogram is not None:
            return histogram_distance(hist, self.last_histogram) >= self.cut_threshold
        return False


def check_seconds(value: float) -> float:
    """``--smooth``'s value, checked: a finite number of seconds, 0 or more."""
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise LivecamError(f"{option('smooth')} is a time constant in seconds, 0 (off) or more, not {value}")
    return seconds
