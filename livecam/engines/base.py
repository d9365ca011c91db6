"""The engine contract, said once: what the pipeline, the sinks, annotate and the benchmark may ask of an engine.

Two engines keep it: the PyTorch engine (:class:`livecam.engines.pytorch.engine.TorchEngine`)
and the ONNX Runtime engine (:class:`livecam.engines.runtime.engine.RuntimeEngine`). Each
turns BGR uint8 frames into :class:`~livecam.types.Annotated` frames, in two halves that
the benchmark times apart: :meth:`Engine.prepare` makes the model's input from the
frames, and :meth:`Engine.run_prepared` explains it. The explanation is each engine's
own (torch tensors, or NumPy arrays), hence the contract's two type parameters.

The checks on what a run may combine (panels, views, a fixed class) are here too, as
one pure function that both engines and :mod:`livecam.engines.launch` call, so the
rules and their wording live in one place. No PyTorch here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from livecam.closing import Closing
from livecam.errors import LivecamError, option
from livecam.render import Annotator
from livecam.smooth import Smoother, Steady, check_seconds
from livecam.types import Annotated, Frame, FrameTime, Label

InputT = TypeVar("InputT")  # what prepare makes: a torch tensor, or a NumPy array
ExplanationT = TypeVar("ExplanationT")  # what run_prepared returns: Explanation, or ArrayExplanation


class Engine(Closing, ABC, Generic[InputT, ExplanationT]):
    """Frames in, annotated frames out, with one model, method and class choice.

    A ``with`` block closes it (:class:`~livecam.closing.Closing`). The pipeline calls
    :meth:`process_batch`; the benchmark times :meth:`prepare`, :meth:`run_prepared`
    and :meth:`render` apart.

    ``--smooth`` (:mod:`livecam.smooth`): each engine keeps a :class:`~livecam.smooth.Smoother`
    and calls :meth:`steady` on each frame, in order, between explaining and drawing.

    The view attributes (``annotator``'s colour map and opacity, ``panels``, ``rank``) may be changed between
    frames, then :meth:`reconfigure` called: :mod:`livecam.controls` does so for the live controls.
    """

    annotator: Annotator
    panels: bool = False
    rank: int = 0  # which class each frame's map is of: 0 its top class (or --class), k its k-th most probable
    smoother: Smoother  # made by each engine's __init__, of its panels and fixed class

    @property
    def smooth_s(self) -> float:
        """The smoothing time constant in seconds (0: off); it may change between frames (live controls)."""
        return self.smoother.seconds

    @smooth_s.setter
    def smooth_s(self, value: float) -> None:
        self.smoother.seconds = self._check_smooth(check_seconds(value))

    def reset_smoothing(self) -> None:
        """Forget the frames smoothed so far: the next one starts afresh (a new file, or part of one)."""
        self.smoother.reset()

    def _check_smooth(self, seconds: float) -> float:
        """An engine that cannot smooth the way it draws refuses a time constant above 0 here."""
        return seconds

    def steady(self, frame: Frame, probs: np.ndarray, maps: np.ndarray, classes: Sequence[int]) -> Steady | None:
        """Frame ``frame``'s smoothed probabilities, maps and explained classes (its (C,) probabilities, its
        (K, h, w) maps of ``classes``); None when smoothing is off, the smoother then forgetting the past so that
        turning it on starts afresh."""
        if self.smoother.seconds == 0:
            self.smoother.reset()
            return None
        return self.smoother.step(frame.timestamp, probs, maps, classes, frame.image)

    @property
    @abstractmethod
    def description(self) -> str:
        """What runs, for the header line: the device or provider, and the precision."""

    @property
    @abstractmethod
    def class_names(self) -> Sequence[str]:
        """The model's class names, by class index."""

    @property
    @abstractmethod
    def layer(self) -> str:
        """The layer the maps are taken at."""

    @property
    @abstractmethod
    def panel_count(self) -> int:
        """Maps drawn per frame: with panels one per class shown, else 1."""

    @abstractmethod
    def prepare(self, images: list[np.ndarray]) -> InputT:
        """BGR uint8 frames of one size -> the model's input for :meth:`run_prepared`."""

    @abstractmethod
    def run_prepared(self, x: InputT) -> ExplanationT:
        """Explain a prepared batch (the whole explanation call); the maps stay at the layer's resolution."""

    def explain_beside(self, other: Engine[Any, Any], x: InputT) -> tuple[ExplanationT, Any] | None:
        """This engine's explanation of a prepared batch and ``other``'s, from one forward pass, where the
        engines can share it (the PyTorch engine: one load of a model, two methods); None where they cannot
        (then each explains on its own). Used by :class:`livecam.engines.compare.CompareEngine`."""
        return None

    def explain(self, images: list[np.ndarray]) -> ExplanationT:
        """Explain a batch of BGR uint8 frames; the maps stay at the layer's resolution."""
        return self.run_prepared(self.prepare(images))

    @abstractmethod
    def render(self, frame: Frame, explanation: ExplanationT, i: int = 0, readout: str | None = None,
               labels: list[Label] | None = None) -> np.ndarray:
        """Frame ``frame`` (sample ``i`` of the batch) annotated with its rows of ``explanation``
        (and ``labels``, its top classes, when the caller has them already)."""

    @abstractmethod
    def annotated(self, explanation: ExplanationT, frame: Frame, i: int = 0,
                  readout: str | None = None) -> Annotated:
        """Sample ``i`` of an explained batch as its output frame: :meth:`render` on ``frame`` (of any size, the
        maps stretched to it), with its labels and maps (no timings)."""

    @abstractmethod
    def process_batch(self, frames: list[Frame], readout: str | None = None) -> list[Annotated]:
        """Explain and annotate frames in one batch; ``readout`` is the live speed text; timings are per frame."""

    def process(self, frame: Frame, readout: str | None = None) -> Annotated:
        """Explain and annotate one frame."""
        return self.process_batch([frame], readout)[0]

    @property
    def method(self) -> str:
        """The method the maps are made with."""
        raise NotImplementedError

    def live_methods(self) -> tuple[str, ...]:
        """The methods :meth:`switch_method` can switch to while the engine runs (default: its own)."""
        return (self.method,)

    def switch_method(self, method: str) -> bool:
        """Explain with ``method`` from the next frame on; False while it is being prepared (the old method runs
        on: call again); a one-line :class:`LivecamError` when it cannot be."""
        if method != self.method:
            raise LivecamError(f"this engine explains with {self.method} only, not {method}")
        return True

    @property
    def max_rank(self) -> int:
        """The highest ``rank`` the engine can explain (0: one fixed class)."""
        return 1

    @property
    def can_show_panels(self) -> bool:
        """Can ``panels`` be turned on?"""
        return False

    def reconfigure(self) -> None:
        """The view attributes changed (between frames): rebuild what depends on them (default: nothing)."""

    @property
    def drawn_by(self) -> Sequence[Engine[Any, Any]]:
        """The engines whose view attributes draw this one's frames: itself (a compare run: its two sides)."""
        return (self,)

    @abstractmethod
    def expected_frame_time(self) -> FrameTime | None:
        """What one frame is expected to cost when the method is slow (Score-CAM), to say before the run."""


AnyEngine = Engine[Any, Any]  # an engine of either kind: its input and explanation types depend on the backend


def check_combination(panels: bool, topk: int, view: str = "overlay", target_class: object = None) -> None:
    """Refuse, in one line, the options an engine cannot draw together: panels with the guided view,
    panels with one fixed class, or panels of fewer than two classes."""
    if not panels:
        return
    if view != "overlay":
        raise LivecamError(f"{option('panels')} and {option('view')} guided do not combine; choose one")
    if target_class is not None:
        raise LivecamError(f"{option('panels')} shows the {option('topk')} most probable classes, so it does not "
                           f"combine with {option('class')}")
    if topk < 2:
        raise LivecamError(f"{option('panels')} shows one panel for each of the {option('topk')} most probable "
                           f"classes, so it needs {option('topk')} 2 or more, not {topk}")
