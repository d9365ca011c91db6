"""Live controls: the view settings a viewer may change while a run goes on, checked once, applied between frames.

The window's keys (:mod:`livecam.sinks.window`) and the browser's ``POST /control``
(:mod:`livecam.sinks.serve`) both go through :meth:`Controls.change`, so one
function (:func:`validate`) says what is allowed and how a bad value is refused.
A change is only recorded there (from any thread); the pipeline calls
:meth:`Controls.apply` on its own thread before each step, so the engine is
never changed in the middle of a frame, and the next frame is the first drawn
with the new settings. :meth:`Controls.apply` returns the settings' record when
they changed (and for the first frame), which the per-frame log writes.

The settings (:class:`ViewSettings`, as JSON: :class:`SettingsRecord`):

- ``method``: one of the methods the engine can switch to
  (:meth:`livecam.engines.base.Engine.live_methods`). On ONNX Runtime another method is
  another graph, made in the background; the old method runs until it is ready;
- ``rank``: which class the map is of. 0: each frame's most probable class;
  k (1 to 9): each frame's k-th most probable class;
- ``panels``: a panel for each of the top classes (turning it on sets ``rank``
  to 0; choosing a rank turns it off);
- ``alpha``: the heatmap's opacity, 0 to 1;
- ``colormap``: one of :data:`livecam.choices.COLORMAPS`;
- ``smooth_s``: the maps' time smoothing in seconds (engines that smooth);
- ``paused``: no frames are taken while paused.

No PyTorch here.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypedDict

from livecam import choices
from livecam.engines.base import AnyEngine
from livecam.errors import LivecamError, option
from livecam.text import ordinal

log = logging.getLogger(__name__)

SMOOTH_STEPS = (0.0, 0.25, 0.5, 1.0)  # what the m key cycles through, in seconds
ALPHA_STEP = 0.1  # what + and - change the opacity by
MAX_RANK = 9  # keys 1 to 9
SETTINGS = ("method", "rank", "panels", "alpha", "colormap", "smooth_s", "paused")


class SettingsRecord(TypedDict):
    """The settings as the per-frame log and ``/status`` give them."""

    method: str
    rank: int
    panels: bool
    alpha: float
    colormap: str
    smooth_s: float
    paused: bool


@dataclass(frozen=True)
class ViewSettings:
    """What a viewer may change while the run goes on (see the module's docstring)."""

    method: str
    rank: int = 0
    panels: bool = False
    alpha: float = 0.5
    colormap: str = choices.DEFAULT_COLORMAP
    smooth_s: float = 0.0
    paused: bool = False

    def record(self) -> SettingsRecord:
        return SettingsRecord(method=self.method, rank=self.rank, panels=self.panels, alpha=self.alpha,
                              colormap=self.colormap, smooth_s=self.smooth_s, paused=self.paused)


@dataclass(frozen=True)
class Limits:
    """What the running engine allows: the methods it can switch to, the ranks it can explain, panels, smoothing."""

    methods: tuple[str, ...]
    max_rank: int = MAX_RANK  # 0: the run explains one fixed class (--class), so there is no rank to choose
    panels: bool = True
    smooth: bool = False


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LivecamError(f"{name} must be a number, not {value!r}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise LivecamError(f"{name} must be true or false, not {value!r}")
    return value


def _name(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        near = choices.suggest(value, list(allowed)) if isinstance(value, str) else ""
        raise LivecamError(f"unknown {name} {value!r}{near}; this run offers {', '.join(allowed)}")
    return value


def validate(changes: Mapping[str, object], current: ViewSettings, limits: Limits) -> ViewSettings:
    """``current`` with ``changes`` made, each checked: an unknown setting or a value out of range is a one-line
    :class:`LivecamError`, and nothing changes."""
    if not isinstance(changes, Mapping):
        raise LivecamError(f"the settings must be an object of names and values, not {type(changes).__name__}")
    unknown = [str(key) for key in changes if key not in SETTINGS]
    if unknown:
        near = choices.suggest(unknown[0], list(SETTINGS))
        raise LivecamError(f"unknown setting {', '.join(map(repr, unknown))}{near}; the settings are "
                           f"{', '.join(SETTINGS)}")
    new = current
    if "method" in changes:
        new = replace(new, method=_name("method", changes["method"], limits.methods))
    if "colormap" in changes:
        new = replace(new, colormap=_name("colormap", changes["colormap"], choices.COLORMAPS))
    if "alpha" in changes:
        alpha = _number("alpha", changes["alpha"])
        if not 0.0 <= alpha <= 1.0:
            raise LivecamError(f"alpha must lie between 0 and 1, not {alpha:g}")
        new = replace(new, alpha=round(alpha, 3))
    if "smooth_s" in changes:
        seconds = _number("smooth_s", changes["smooth_s"])
        if not limits.smooth and seconds != 0:
            raise LivecamError("this run's engine does not smooth its maps in time, so smooth_s stays 0")
        if not 0.0 <= seconds <= 10.0:
            raise LivecamError(f"smooth_s must lie between 0 and 10 seconds, not {seconds:g}")
        new = replace(new, smooth_s=seconds)
    if "paused" in changes:
        new = replace(new, paused=_flag("paused", changes["paused"]))
    panels = _flag("panels", changes["panels"]) if "panels" in changes else None
    if "rank" in changes:
        rank = changes["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise LivecamError(f"rank must be a whole number, not {rank!r}")
        if rank and limits.max_rank == 0:
            raise LivecamError(f"this run explains one fixed class ({option('class')}), so there is no rank to choose")
        if not 0 <= rank <= limits.max_rank:
            raise LivecamError(f"rank must lie between 0 (each frame's top class) and {limits.max_rank} (its "
                               f"{ordinal(limits.max_rank)} most probable class), not {rank}")
        if rank and panels:
            raise LivecamError("panels show the top classes side by side, so they do not combine with a rank; "
                               "choose one")
        new = replace(new, rank=rank, panels=False if rank else new.panels)
    if panels is not None:
        if panels and not limits.panels:
            raise LivecamError("this run explains one class per frame, so there are no panels to show")
        new = replace(new, panels=panels, rank=0 if panels else new.rank)
    return new


def cycle(values: tuple[object, ...], current: object, step: int = 1) -> object:
    """The value after ``current`` in ``values`` (the first when ``current`` is not among them)."""
    if current not in values:
        return values[0]
    return values[(values.index(current) + step) % len(values)]


class Controls:
    """The view settings of one running engine: changed from any thread, applied by the pipeline between frames.

    Args:
        engine: the running engine; its method, panels, colour map, opacity and smoothing are the first settings.

    Example::

        >>> controls = Controls(engine)
        >>> controls.change({"colormap": "turbo", "alpha": 0.7})  # from the window's keys or the browser
        >>> run(source, engine, sinks, controls=controls)  # the next frame is drawn with them
    """

    def __init__(self, engine: AnyEngine) -> None:
        self.limits = limits_of(engine)
        self._lock = threading.Lock()
        self._wanted = settings_of(engine)
        self.applied = self._wanted  # what the engine runs now; changed only by apply()
        self._recorded = False
        self.error: str | None = None  # why the last method switch failed, for the viewer

    @property
    def settings(self) -> ViewSettings:
        """The settings asked for (the engine runs them from the next frame on; a method once it is ready)."""
        with self._lock:
            return self._wanted

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._wanted.paused

    def change(self, changes: Mapping[str, object]) -> ViewSettings:
        """Check ``changes`` (:func:`validate`) and ask for them: the next frame is drawn with them."""
        with self._lock:
            self._wanted = validate(changes, self._wanted, self.limits)
            if "method" in changes:
                self.error = None
            return self._wanted

    def step(self, name: str, direction: int = 1) -> ViewSettings:
        """The window's keys: the next method, colour map or smoothing, opacity up or down, panels or pause
        toggled."""
        current = self.settings
        if name == "alpha":
            value: object = min(1.0, max(0.0, round(current.alpha + direction * ALPHA_STEP, 3)))
        elif name == "method":
            value = cycle(self.limits.methods, current.method, direction)
        elif name == "colormap":
            value = cycle(choices.COLORMAPS, current.colormap, direction)
        elif name == "smooth_s":
            value = cycle(SMOOTH_STEPS, current.smooth_s, direction)
        elif name in ("panels", "paused"):
            value = not getattr(current, name)
        else:
            raise LivecamError(f"unknown setting {name!r}; the settings are {', '.join(SETTINGS)}")
        return self.change({name: value})

    def apply(self, engine: AnyEngine) -> SettingsRecord | None:
        """Make the engine run the settings asked for (on the pipeline's thread, between frames); the settings'
        record when the frames from now on are drawn with other settings than before (and the first time)."""
        wanted = self.settings
        applied = self.applied
        if wanted.method != applied.method:
            try:
                if not engine.switch_method(wanted.method):  # still being prepared: the old method runs on
                    wanted = replace(wanted, method=applied.method)
            except LivecamError as exc:
                with self._lock:
                    self.error = str(exc)
                    self._wanted = replace(self._wanted, method=applied.method)
                log.warning("%s", exc)
                wanted = replace(wanted, method=applied.method)
        view = (wanted.rank, wanted.panels, wanted.alpha, wanted.colormap, wanted.smooth_s)
        if view != (applied.rank, applied.panels, applied.alpha, applied.colormap, applied.smooth_s) or \
                wanted.method != applied.method:
            set_view(engine, wanted)
        self.applied = wanted
        first = not self._recorded
        self._recorded = True
        if first or _frame_view(wanted) != _frame_view(applied):
            return wanted.record()
        return None


def _frame_view(settings: ViewSettings) -> ViewSettings:
    return replace(settings, paused=False)  # pausing changes no frame


def limits_of(engine: AnyEngine) -> Limits:
    """What ``engine`` lets a viewer change."""
    return Limits(methods=tuple(engine.live_methods()), max_rank=min(MAX_RANK, engine.max_rank),
                  panels=engine.can_show_panels, smooth=True)


def settings_of(engine: AnyEngine) -> ViewSettings:
    """The settings ``engine`` runs now."""
    annotator = engine.annotator
    return ViewSettings(method=engine.method, rank=engine.rank, panels=engine.panels, alpha=float(annotator.alpha),
                        colormap=annotator.colormap, smooth_s=float(engine.smooth_s))


def set_view(engine: AnyEngine, settings: ViewSettings) -> None:
    """Set the engine's view attributes to ``settings`` (between frames); the engine rebuilds what depends on them.
    A compare run's are its sides' (:attr:`~livecam.engines.base.Engine.drawn_by`), each set the same."""
    if tuple(engine.drawn_by) != (engine,):
        for side in engine.drawn_by:
            set_view(side, settings)
        engine.rank, engine.panels = settings.rank, settings.panels
        return
    engine.annotator.colormap = settings.colormap
    engine.annotator.alpha = settings.alpha
    engine.panels = settings.panels
    engine.rank = settings.rank
    # --smooth: each panel's class (or the k-th class, which is another class as the ranking moves) averaged on
    # its own, or one explained class with hysteresis
    by_class = settings.panels or settings.rank > 1
    if engine.smoother.panels != by_class:
        engine.smoother.panels = by_class
        engine.smoother.reset()
    engine.smooth_s = settings.smooth_s
    engine.reconfigure()


