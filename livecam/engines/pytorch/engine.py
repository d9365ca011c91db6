"""The PyTorch engine's per-frame step: preprocess -> explain -> render, on the CPU or a GPU.

It runs what does not fit in an exported graph (:mod:`livecam.engines.runtime` runs
what does; :mod:`livecam.engines.launch` chooses). Two paths keep one contract, frames
in and :class:`Annotated` frames out:

- OpenCV (the default on the CPU): resize and normalize with OpenCV, explain
  with torch, colour map and blend in uint8 with OpenCV;
- device (the default on CUDA, see :mod:`livecam.engines.pytorch.device_step`): one upload,
  everything on the device (captured in a CUDA graph), one download; only the
  text labels are drawn on the host.

The model runs in the chosen precision and memory format on the engine's own
copy of it; the map arithmetic is float32 in both paths.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch

from livecam import choices
from livecam.cams import METHODS, Explanation
from livecam.cams.base import drop_copied_hooks
from livecam.engines import base
from livecam.engines.base import check_combination
from livecam.engines.pytorch.device_step import DeviceStep, HostTransfer
from livecam.engines.pytorch.explainer import ClassSpec, Explainer
from livecam.errors import LivecamError, option
from livecam.preprocess import downscale, to_array
from livecam.render import Annotator, detail_image, panel_size, panels_image, tile
from livecam.render import top_labels as labels_of
from livecam.smooth import Smoother, Steady, check_seconds
from livecam.timing import StageTimer, Timer, no_timer
from livecam.types import Annotated, Frame, FrameTime, Label, Preprocess
from livecam.zoo import LoadedModel
from livecam.zoo.analysis import probe_input
from livecam.zoo.fusion import fold_batchnorm

log = logging.getLogger(__name__)

__all__ = ["Annotated", "Engine", "TorchEngine", "downscale", "explain_frame", "to_input", "top_labels"]


def to_input(
    images: np.ndarray | list[np.ndarray],
    spec: Preprocess,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> torch.Tensor:
    """BGR uint8 frames -> the model's normalized float32 batch (N, 3, H, W).

    Each whole frame is resized to the model's input size (area averaging, no
    crop, so the map covers the whole frame), turned to RGB and normalized with
    the model's mean and std. With ``channels_last`` the batch keeps the frames'
    (N, H, W, C) layout in memory, which is what a channels-last model wants,
    and saves a copy.
    """
    tensor = torch.from_numpy(to_array(images, spec)).permute(0, 3, 1, 2)
    return (tensor if channels_last else tensor.contiguous()).to(device)


def explain_frame(frame: np.ndarray, explainer: Explainer, classes: ClassSpec = None) -> Explanation:
    """Explain one BGR uint8 frame with ``explainer``: the whole frame is the model's input, and the maps come
    back at the frame's size, ready to lay over it.

    Args:
        frame: a BGR uint8 (H, W, 3) image, as OpenCV reads it.
        explainer: the :class:`~livecam.engines.pytorch.explainer.Explainer` to run.
        classes: which classes to explain: None (the top class), an index, or one index per sample.

    Returns:
        An :class:`~livecam.cams.Explanation` whose ``cams`` are (1, H, W) float32 in [0, 1].

    Example::

        >>> explainer = livecam.Explainer(livecam.load_model("efficientnet_lite0"), method="gradcam")
        >>> result = livecam.explain_frame(cv2.imread("cat.jpg"), explainer)
        >>> result.cams.shape, int(result.classes[0])
    """
    x = to_input(frame, explainer.preprocess, explainer.device)
    return explainer(x, classes=classes, size=frame.shape[:2])


def top_labels(explanation: Explanation, class_names: list[str], k: int, i: int = 0, rows: int = 1) -> list[Label]:
    """The k most probable classes of the sample in row ``i``, the explained ones (rows ``i`` to ``i + rows``:
    the panels') marked, and added if missing."""
    probs = torch.softmax(explanation.logits[i].float(), dim=0).cpu().numpy()
    return labels_of(probs, class_names, k, [int(c) for c in explanation.classes[i:i + rows]])


VIEWS = choices.VIEWS
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` is fp16 on CUDA and fp32 on the CPU."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise LivecamError(f"unknown precision '{precision}'; use auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


class TorchEngine(base.Engine[torch.Tensor, Explanation]):
    """Turn frames into annotated frames with one model, method and class choice, in PyTorch.

    The engine runs the model in ``precision`` (fp32, fp16 or bf16; ``auto``:
    fp16 on CUDA, fp32 on the CPU) and, with ``channels_last``, in the
    channels-last memory format, and with ``fold_bn`` it folds each BatchNorm into
    the convolution before it (checked numerically; see ``zoo.fusion``). It then
    works on its own copy of the model, so the caller's stays as it was. The map
    arithmetic is float32 whatever the model runs in.

    With ``smooth`` above 0 (``--smooth SECONDS``, :mod:`livecam.smooth`) the maps, the probabilities and
    the explained class are steadied over time between explaining and drawing. That runs on the host, so
    the frames are drawn with OpenCV (``renderer`` auto; the device renderer cannot smooth). In the
    guided view the Grad-CAM overlay is smoothed and the guided detail map beside it is each frame's own.
    """

    def __init__(
        self,
        model: LoadedModel,
        method: str = "gradcam",
        layer: str | None = None,
        target_class: int | None = None,
        topk: int = 3,
        annotator: Annotator | None = None,
        precision: str = "auto",
        channels_last: bool = True,
        renderer: str = "auto",
        graph: bool = True,
        fold_bn: bool = True,
        panels: bool = False,
        view: str = "overlay",
        smooth: float = 0.0,
    ) -> None:
        if renderer not in ("auto", "opencv", "device"):
            raise LivecamError(f"unknown renderer '{renderer}'; use auto, opencv or device")
        self.renderer = renderer
        smooth = self._check_smooth(check_seconds(smooth))
        if view not in VIEWS:
            raise LivecamError(f"unknown view '{view}'; use {' or '.join(VIEWS)}")
        check_combination(panels, topk, view, target_class)
        self.panels, self.view = panels, view
        if target_class is not None and not 0 <= target_class < model.info.num_classes:
            raise LivecamError(f"class index {target_class} is out of range: the model has classes 0 to "
                               f"{model.info.num_classes - 1}")
        self.loaded = model  # the caller's model, as loaded: engines of one load may share a forward pass
        self.dtype = resolve_precision(precision, model.device)
        self.channels_last = channels_last
        self.folded = 0  # BatchNorm layers folded into convolutions
        target = layer or model.target_layer
        fold_bn = fold_bn and target in dict(model.module.named_modules())  # else the Explainer says what is wrong
        if self.dtype != torch.float32 or channels_last or fold_bn:
            model = copy.deepcopy(model)  # the head's Linear stays the copy's own
            drop_copied_hooks(model.module)  # an open Explainer of the caller's model is not this copy's
            if fold_bn:
                self.folded = fold_batchnorm(model.module, probe_input(model.module, model.preprocess.size), target)
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            model.module.to(dtype=self.dtype)
            model.module.to(memory_format=memory_format)
        self.model = model
        self.explainer = Explainer(model, method=method, layer=layer)
        self.target_class = target_class
        self.topk = topk
        self.annotator = annotator or Annotator()
        self.graph = graph
        if renderer == "device" and not self._plain():
            raise LivecamError(f"the device renderer draws the plain overlay only, not {method} panels or "
                               "guided views; use the opencv renderer")
        self.device_step: DeviceStep | None = None
        self.transfer: HostTransfer | None = None
        self._step_key: tuple[object, ...] | None = None
        self.smoother = Smoother(smooth, panels=panels, fixed=target_class is not None)
        self.reconfigure()

    def _plain(self) -> bool:
        """Does the device step cover this view? The plain overlay of each frame's top class (or --class), by a
        method that needs no second pass over the input."""
        return not (self.explainer.method.needs_input or self.panels or self.view != "overlay" or self.rank > 1)

    def reconfigure(self) -> None:
        """The device step (CUDA and --renderer device) for the method, view, colour map and opacity as they are
        now; made again only when one of them changed (live controls). A view it does not cover runs on OpenCV."""
        model = self.model
        on_device = self._plain() and (self.renderer == "device" or (
            self.renderer == "auto" and model.device.type == "cuda" and self.smoother.seconds == 0))
        key = (on_device, self.explainer.method.name, self.annotator.colormap, self.annotator.alpha)
        if key == self._step_key:
            return
        self._step_key = key
        self.device_step = DeviceStep(self.explainer, model.preprocess, self.annotator.colormap, self.annotator.alpha,
                                      self.target_class, self.channels_last, self.graph) if on_device else None
        if on_device and model.device.type == "cuda" and self.transfer is None:
            self.transfer = HostTransfer(model.device)

    def _check_smooth(self, seconds: float) -> float:
        """The device renderer draws on the device, where nothing is smoothed: it refuses a time constant."""
        if seconds > 0 and self.renderer == "device":
            raise LivecamError(f"the device renderer cannot smooth ({option('smooth')} {seconds:g}); use the "
                               "opencv renderer, or leave the renderer to auto")
        return seconds

    @property
    def method(self) -> str:
        return self.explainer.method.name

    def live_methods(self) -> tuple[str, ...]:
        """Every method that can explain the layer, but Score-CAM (a forward pass per channel: not for live video)."""
        grid = self.explainer.info.grid_gradient
        return tuple(name for name in choices.METHODS
                     if name != "scorecam" and (grid or not METHODS[name].needs_grad))

    def switch_method(self, method: str) -> bool:
        """Explain with ``method`` from the next frame on (a new Explainer on the same layer; the old hook goes)."""
        if method == self.method:
            return True
        if method not in self.live_methods():
            raise LivecamError(f"{method} cannot explain layer {self.layer} live; choose one of "
                               f"{', '.join(self.live_methods())}")
        explainer = Explainer(self.model, method=method, layer=self.explainer.layer)
        self.explainer.remove()
        self.explainer = explainer
        self.reconfigure()
        return True

    @property
    def max_rank(self) -> int:
        """The labelled classes' count (0 with --class: one fixed class)."""
        return 0 if self.target_class is not None else min(self.topk, self.model.info.num_classes)

    @property
    def can_show_panels(self) -> bool:
        return self.target_class is None and self.topk >= 2 and self.view == "overlay"

    @property
    def description(self) -> str:
        """What runs, for the header line: the device and the precision."""
        return f"{self.model.device} (PyTorch) in {str(self.dtype)[6:]}"

    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    @property
    def layer(self) -> str:
        return self.explainer.layer

    def prepare(self, images: list[np.ndarray]) -> torch.Tensor:
        """BGR frames -> the model's normalized float32 batch on its device, in its memory format."""
        return to_input(images, self.model.preprocess, self.model.device, self.channels_last)

    def run_prepared(self, x: torch.Tensor, timer: Timer = no_timer) -> Explanation:
        """The explainer's call on :meth:`prepare`'s input (forward, backward where the method has one, the maps),
        as the engine makes it; the maps stay at the layer's resolution."""
        k = self.topk if self.panels else max(1, self.rank)
        explanation = self.explainer(x, classes=self.target_class, upsample=False, timer=timer, topk=k,
                                     guided=self.view == "guided")
        return explanation if self.panels or k == 1 else _kth(explanation, k)

    def explain_beside(self, other: base.AnyEngine, x: torch.Tensor) -> tuple[Explanation, Explanation] | None:
        """This engine's explanation of :meth:`prepare`'s ``x`` and ``other``'s from one forward pass, where
        ``other`` is a PyTorch engine of the same load of the model that explains the same layer and classes
        in the same precision, with a method that needs no second pass (one model, two methods); else None."""
        if not isinstance(other, TorchEngine) or other.loaded is not self.loaded:
            return None
        same = ((self.dtype, self.channels_last, self.folded, self.target_class, self.rows_per_frame, self.view)
                == (other.dtype, other.channels_last, other.folded, other.target_class, other.rows_per_frame,
                    other.view))
        if not same or self.rows_per_frame != 1 or self.view != "overlay" or not self.explainer.shares_forward(
                other.explainer):
            return None
        return self.explainer.beside(other.explainer, x, classes=self.target_class, upsample=False)

    def explain(self, images: list[np.ndarray], timer: Timer = no_timer) -> Explanation:
        """Explain a batch of BGR frames; the maps stay at the layer's resolution."""
        with timer("preprocess"):
            x = self.prepare(images)
        return self.run_prepared(x, timer)

    @property
    def rows_per_frame(self) -> int:
        """Rows of an explanation per frame: the topk classes with panels, else 1."""
        return min(self.topk, self.model.info.num_classes) if self.panels else 1

    @property
    def panel_count(self) -> int:
        """Maps drawn per frame: the rows of the explanation each frame has."""
        return self.rows_per_frame

    def render(self, frame: Frame, explanation: Explanation, i: int = 0, readout: str | None = None,
               labels: list[Label] | None = None) -> np.ndarray:
        """Frame ``frame`` (sample ``i`` of the batch) annotated with its rows of ``explanation``
        (and ``labels``, its top classes, when the caller has them already)."""
        if self.panels:
            return self._render_panels(frame, explanation, i, readout)
        cam = explanation.cams[i].float().cpu().numpy()
        if labels is None:
            labels = top_labels(explanation, self.model.class_names, self.topk, i)
        if self.view == "guided":
            return self._render_guided(frame, explanation, cam, labels, i, readout)
        return self.annotator.annotate(frame.image, cam, labels, readout)

    def _render_panels(self, frame: Frame, explanation: Explanation, i: int, readout: str | None) -> np.ndarray:
        """One panel per class, best first, each with its own map and label, tiled as wide as the frame."""
        rows = slice(i * self.rows_per_frame, (i + 1) * self.rows_per_frame)
        names = [self.model.class_names[int(c)] for c in explanation.classes[rows]]
        return panels_image(self.annotator, frame.image, explanation.cams[rows].float().cpu().numpy(), names,
                            explanation.scores[rows].float().tolist(), readout)

    def _render_guided(self, frame: Frame, explanation: Explanation, cam: np.ndarray, labels: list[Label], i: int,
                       readout: str | None) -> np.ndarray:
        """The overlay and, beside it, the guided detail map of the explained class."""
        size = panel_size((frame.image.shape[1], frame.image.shape[0]), 2)
        overlay = self.annotator.annotate(downscale(frame.image, size), cam, labels, readout)
        assert explanation.detail is not None, "the guided view's explanations hold the detail maps"
        detail = detail_image(explanation.detail[i].float().cpu().numpy(), size)
        name = self.model.class_names[int(explanation.classes[i])]
        what = explanation.method if explanation.method.startswith("guided") else f"guided {explanation.method}"
        self.annotator.label(detail, [Label(f"{what}: {name}", float(explanation.scores[i]), True)])
        return tile([overlay, detail])

    def process_batch(self, frames: list[Frame], readout: str | None = None) -> list[Annotated]:
        """Explain and annotate frames in one batch; timings are per frame."""
        step = self.device_step if self.smoother.seconds == 0 else None  # smoothing draws on the host
        if step is not None:
            if len({f.image.shape for f in frames}) > 1:  # a batch on the device needs one frame size
                return [out for f in frames for out in self._process_on_device(step, [f], readout)]
            return self._process_on_device(step, frames, readout)
        timer = StageTimer()
        explanation = self.explain([f.image for f in frames], timer)
        start = time.perf_counter()
        k = self.rows_per_frame
        results = [self._drawn(explanation, frame, i, k, readout) for i, frame in enumerate(frames)]
        render_s = time.perf_counter() - start
        n = len(frames)
        timings = {
            "preprocess": sum(timer.times["preprocess"]) / n,
            "explain": sum(sum(timer.times[s]) for s in ("forward", "backward", "cam", "guided")) / n,
            "render": render_s / n,
        }
        for out in results:
            out.timings = dict(timings)
        return results

    def annotated(self, explanation: Explanation, frame: Frame, i: int = 0, readout: str | None = None) -> Annotated:
        """Sample ``i``'s output frame, drawn on ``frame`` from its labels, with its rows of the explanation."""
        return self._drawn(explanation, frame, i, self.rows_per_frame, readout)

    def _drawn(self, explanation: Explanation, frame: Frame, i: int, rows: int, readout: str | None) -> Annotated:
        """Sample ``i``'s output frame, drawn from its labels, with its ``rows`` rows of the explanation; smoothed
        where ``smooth_s`` is on (then the frame's own labels and maps are the raw ones)."""
        row = i * rows
        if self.smoother.seconds == 0:
            self.smoother.reset()
            labels = top_labels(explanation, self.model.class_names, self.topk, row, rows)
            image = self.render(frame, explanation, i, readout, labels)
            return self._annotated(image, explanation, frame, row, rows, labels)
        probs = torch.softmax(explanation.logits[row].float(), dim=0).cpu().numpy()
        maps = explanation.cams[row:row + rows].float().cpu().numpy()
        classes = [int(c) for c in explanation.classes[row:row + rows]]
        labels = labels_of(probs, self.model.class_names, self.topk, classes)
        steady = self.steady(frame, probs, maps, classes)
        assert steady is not None, "smoothing is on"
        shown = labels_of(steady.probs, self.model.class_names, self.topk, steady.classes)
        image = self._render_steady(frame, explanation, i, steady, shown, readout)
        return Annotated(image, explanation, frame, {}, row, shown, steady.maps, steady.classes, labels, maps,
                         classes)

    def _render_steady(self, frame: Frame, explanation: Explanation, i: int, steady: Steady, labels: list[Label],
                       readout: str | None) -> np.ndarray:
        """Frame ``frame`` drawn with its smoothed maps and ``labels`` (the guided view: its own detail map)."""
        if self.panels:
            return panels_image(self.annotator, frame.image, steady.maps,
                                [self.model.class_names[c] for c in steady.classes],
                                [float(steady.probs[c]) for c in steady.classes], readout)
        if self.view == "guided":
            return self._render_guided(frame, explanation, steady.maps[0], labels, i, readout)
        return self.annotator.annotate(frame.image, steady.maps[0], labels, readout)

    def _annotated(self, image: np.ndarray, explanation: Explanation, frame: Frame, row: int, rows: int = 1,
                   labels: list[Label] | None = None) -> Annotated:
        """The output frame with its labels and maps (rows ``row`` to ``row + rows`` of the explanation)."""
        if labels is None:
            labels = top_labels(explanation, self.model.class_names, self.topk, row, rows)
        maps = explanation.cams[row:row + rows].float().cpu().numpy()
        classes = [int(c) for c in explanation.classes[row:row + rows]]
        return Annotated(image, explanation, frame, {}, row, labels, maps, classes)

    def upload(self, images: list[np.ndarray]) -> torch.Tensor:
        """Frames of one size -> a (N, H, W, 3) uint8 tensor on the model's device (pinned, on CUDA)."""
        if self.transfer is not None:
            return self.transfer.upload(images)
        return torch.from_numpy(np.stack(images)).to(self.model.device)

    def download(self, images: torch.Tensor) -> np.ndarray:
        """(N, H, W, 3) uint8 on the device -> a host array of its own; waits for the work before it."""
        if self.transfer is not None:
            return self.transfer.download(images)
        return images.cpu().numpy().copy()

    def _process_on_device(self, step: DeviceStep, frames: list[Frame], readout: str | None) -> list[Annotated]:
        """Upload once, run the device step (graphed on CUDA), download once, then draw the labels."""
        t0 = time.perf_counter()
        dev = self.upload([f.image for f in frames])
        t1 = time.perf_counter()
        out = step(dev)
        host = self.download(out.images)
        t2 = time.perf_counter()
        explanation = Explanation(cams=out.cams.clone(), classes=out.classes.clone(), scores=out.scores.clone(),
                                  logits=out.logits.clone(), raw=out.raw.clone(), method=self.explainer.method.name,
                                  layer=self.explainer.layer)
        results = []
        for i, frame in enumerate(frames):
            annotated = self._annotated(host[i], explanation, frame, i)
            self.annotator.label(host[i], annotated.labels, readout)
            results.append(annotated)
        t3 = time.perf_counter()
        n = len(frames)
        for annotated in results:
            annotated.timings = {"upload": (t1 - t0) / n, "explain": (t2 - t1) / n, "render": (t3 - t2) / n}
        return results

    def expected_frame_time(self) -> FrameTime | None:
        """Score-CAM's cost per frame, from timing a few masked forward passes; None for the other methods."""
        if self.explainer.method.name != "scorecam":
            return None
        from livecam.cams import ScoreCAM

        model = self.model
        channels = self.explainer.info.feature_shape[1] * self.rows_per_frame
        x = probe_input(model.module, model.preprocess.size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        seconds = ScoreCAM.seconds_per_frame(model.module, x, channels)
        return FrameTime(seconds=seconds, passes=channels, layer=self.explainer.layer, device=str(model.device))

    def close(self) -> None:
        """Remove the explainer's hooks from the model."""
        self.explainer.remove()


def _kth(explanation: Explanation, k: int) -> Explanation:
    """Of an explanation of each sample's k best classes (k rows a sample), the k-th class's row of each."""
    rows = slice(k - 1, None, k)
    detail = explanation.detail
    return Explanation(cams=explanation.cams[rows], classes=explanation.classes[rows],
                       scores=explanation.scores[rows], logits=explanation.logits[rows], raw=explanation.raw[rows],
                       method=explanation.method, layer=explanation.layer,
                       detail=None if detail is None else detail[rows])


Engine = TorchEngine  # the name livecam.Engine has always had; the contract is livecam.engines.base.Engine
