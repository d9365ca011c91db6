"""What an annotated output depends on besides its source, resolved so that equal settings compare equal.

A rerun skips a file only when its earlier line's settings give the output this
run's give (:func:`same_settings`). Both sides are taken as the run uses them
(:meth:`Defaults.normalized`): a setting left out is its default, a graph's
choices are its metadata's, and a class by name or index is one class. Only
one comparison needs the model itself, a zoo model's default layer, and it is
looked up only then (:attr:`Defaults.layer`), so planning stays torch-free and
quick.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict

from livecam.errors import LivecamError

if TYPE_CHECKING:
    from livecam.engines.launch import EngineOptions
    from livecam.engines.runtime.graph import GraphInfo

log = logging.getLogger(__name__)

# The container every output is written in, whatever the input's; the codec (H.264 unless --codec) and --crf
# are in the settings, which FileWorker passes to VideoFileSink.
OUTPUT_SUFFIX = ".mp4"
DEFAULTS: Final = "defaults"  # in the settings: the names of those not given, which livecam resolved itself


class CompareSettings(TypedDict):
    """The second side of a run side by side, as it runs (:func:`livecam.engines.launch.compare_options`)."""

    model: str  # a zoo name, or a graph's absolute path
    weights: str | None
    method: str | None  # None: a graph's own
    layer: str | None  # None: the model's default


class Settings(TypedDict, total=False):
    """A manifest line's ``settings``. Every key may be missing: older manifests lack some, tests give none."""

    model: str  # a zoo name, or a graph's absolute path
    weights: str | None
    method: str | None
    layer: str | None
    target_class: str | int | None  # as given; normalized: the index where the class names are known
    topk: int
    panels: bool
    precision: str
    colormap: str
    alpha: float
    smooth: float  # --smooth's seconds; normalized: 0.0 where missing (older manifests: no smoothing)
    codec: str
    crf: int | None
    model_mtime_ns: int  # a graph file's
    compare: CompareSettings | None  # --compare and its kin: the second side as it runs; None: one model
    defaults: list[str]  # DEFAULTS: the settings that were not given


def settings_of(options: EngineOptions, codec: str | None = None, crf: int | None = None) -> Settings:
    """What an output depends on besides its source: a change redoes the files (device, backend, batch don't).

    The values are the ones the run uses, so that equal settings compare equal however they were given: the
    method (a graph's own, else gradcam), the codec (H.264 unless given; one .mp4 cannot hold is refused
    here) and its CRF (the codec's default; none for mjpeg and mp4v), and a graph's layer and class (its
    metadata; a class is its index). A zoo model's default layer needs the model, so it is None here and
    the worker that loads the model writes the one it took (:class:`livecam.annotate.worker.FileWorker`).
    ``defaults`` names the settings that were not given.
    """
    from livecam.sinks.encode import DEFAULT_CRF, resolve_codec

    chosen = resolve_codec(OUTPUT_SUFFIX, codec, crf)
    model = options.model
    graph_file = Path(model).expanduser() if options.is_graph_file else None
    if graph_file is not None:
        model = str(graph_file.resolve())
    settings: Settings = {
        "model": model, "weights": options.weights, "method": options.method, "layer": options.layer,
        "target_class": options.target_class, "topk": options.topk, "panels": options.panels,
        "precision": options.precision, "colormap": options.colormap, "alpha": options.alpha,
        "smooth": float(options.smooth), "codec": chosen, "crf": crf if crf is not None else DEFAULT_CRF.get(chosen)}
    if graph_file is not None and graph_file.is_file():
        settings["model_mtime_ns"] = graph_file.stat().st_mtime_ns
    settings["compare"] = compare_settings(options)
    settings.update(Defaults(settings).normalized(settings))
    settings[DEFAULTS] = sorted(name for name, given in (("method", options.method), ("layer", options.layer),
                                                         ("codec", codec), ("crf", crf)) if given is None)
    return settings


def compare_settings(options: EngineOptions) -> CompareSettings | None:
    """The second side's settings as it runs (the first side's method, a graph's path made absolute), or None."""
    from livecam.choices import DEFAULT_METHOD
    from livecam.engines.launch import compare_options

    if options.compare is None:
        return None
    second = compare_options(options)
    model, method = second.model, second.method
    if second.is_graph_file:
        model = str(Path(model).expanduser().resolve())
    elif method is None:
        method = DEFAULT_METHOD
    return {"model": model, "weights": second.weights, "method": method, "layer": second.layer}


def same_settings(earlier: Settings | None, current: Settings, defaults: Defaults) -> bool:
    """Whether an earlier run's settings (a manifest line's) give the output ``current`` give.

    Both are taken as the run would use them (:meth:`Defaults.normalized`): a setting that is null or
    missing, as in older manifests, is its default, and a class by name or index is one class. The layer,
    where one run left it to the model and the other named it, is compared with the model's default layer,
    looked up only then (:attr:`Defaults.layer`); where both left it to the model it is the same.
    """
    if not isinstance(earlier, dict):  # a manifest line without settings, or with something else there
        return False
    before, now = defaults.normalized(earlier), defaults.normalized(current)
    if {type(before["target_class"]), type(now["target_class"])} == {int, str}:  # a name and an index
        names = defaults.class_names
        if names is not None:
            before["target_class"], now["target_class"] = (defaults.class_key(side.get("target_class"), names)
                                                           for side in (earlier, current))
    if any(before.get(key) != now.get(key) for key in (set(before) | set(now)) - {DEFAULTS, "layer"}):
        return False
    left_before, left_now = _layer_left(before), _layer_left(now)
    if left_before and left_now:
        return True
    if not left_before and not left_now:
        return before["layer"] == now["layer"]
    layer_before, layer_now = (side["layer"] if side["layer"] is not None else defaults.layer for side in (before, now))
    return layer_before is not None and layer_before == layer_now


def _seconds(value: object) -> float:
    """A line's ``smooth``: 0.0 where missing (no smoothing); NaN, which equals nothing, where it is not a number."""
    if value is None:
        return 0.0
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _layer_left(settings: Settings) -> bool:
    """Whether a run left the layer to the model (older manifests: a null layer)."""
    return settings.get("layer") is None or "layer" in (settings.get(DEFAULTS) or ())


class Defaults:
    """What a run's settings leave to the model: the graph's choices, or a zoo model's default layer.

    A graph's are in its metadata, read at once (about a millisecond, :meth:`GraphInfo.read`). A zoo model's
    default layer and class names are looked up only when a comparison needs them, which a rerun of the
    same command never does: in the graph ONNX Runtime runs it from (the livecam cache), else, for the
    layer, by building the model (PyTorch, seconds; its weights do not matter, its architecture does).
    """

    def __init__(self, settings: Settings) -> None:
        from livecam.engines.runtime.graph import GraphInfo

        self.settings = settings
        self.graph: GraphInfo | None = None
        model = settings.get("model")
        if isinstance(model, str) and model.lower().endswith(".onnx"):
            with contextlib.suppress(LivecamError, OSError):  # the engine says what is wrong with it
                self.graph = GraphInfo.read(Path(model))

    def normalized(self, settings: Settings) -> Settings:
        """``settings`` as the run uses them: the method, codec, CRF, class and a graph's layer resolved."""
        from livecam.choices import DEFAULT_METHOD
        from livecam.sinks.encode import DEFAULT_CODEC, DEFAULT_CRF

        model = settings.get("model")
        on_graph = isinstance(model, str) and model.lower().endswith(".onnx")
        method = settings.get("method")
        if method is None:
            method = self.graph.method if self.graph is not None else None if on_graph else DEFAULT_METHOD
        codec = settings.get("codec") or DEFAULT_CODEC[OUTPUT_SUFFIX]
        crf = settings.get("crf")
        layer = settings.get("layer")
        if layer is None and self.graph is not None:
            layer = self.graph.layer
        return {**settings, "method": method, "codec": codec, "crf": crf if crf is not None else DEFAULT_CRF.get(codec),
                "layer": layer, "target_class": self.class_key(settings.get("target_class")),
                "smooth": _seconds(settings.get("smooth"))}

    def class_key(self, value: object, names: tuple[str, ...] | None = None) -> int | str | None:
        """A class as one value: its index where the class names are known (a graph's), else an index given
        as one, or the name in lower case; None (each frame's top class, or a graph's own class).

        ``value`` is what a manifest line holds, whatever that is (a name, an index, a number as text)."""
        from livecam.choices import resolve_class

        if names is None and self.graph is not None:
            names = self.graph.class_names
        if value is None:
            return self.graph.target_class if self.graph is not None else None
        text = str(value).strip()
        if names:
            with contextlib.suppress(LivecamError):
                return resolve_class(text, names)
        return int(text) if text.lstrip("-").isdigit() else text.lower()

    @functools.cached_property
    def _cached_graph(self) -> GraphInfo | None:
        """The zoo model's graph in the livecam cache, for these settings or the default ones; None if none."""
        from livecam import choices
        from livecam.engines import launch
        from livecam.engines.runtime.graph import GraphInfo

        model = self.settings.get("model")
        if self.graph is not None or not isinstance(model, str):
            return None
        settings = self.settings
        weights = launch.weights_file(model, settings.get("weights"))
        if weights is None:  # torchvision's own weights: their file is known to torchvision
            return None
        k = settings.get("topk", 1) if settings.get("panels") else 1
        target = settings.get("target_class")
        for method, topk, typed, precision in (
                (settings.get("method") or choices.DEFAULT_METHOD, k, None if target is None else str(target),
                 "fp16" if settings.get("precision") == "fp16" else "fp32"),
                (choices.DEFAULT_METHOD, 1, None, "fp32")):
            path = launch.graph_cache_path(model, weights, method, None, topk, typed, precision)
            if path.is_file():
                with contextlib.suppress(LivecamError, OSError):
                    return GraphInfo.read(path)
        return None

    @functools.cached_property
    def class_names(self) -> tuple[str, ...] | None:
        """The model's class names, where they are cheap to know (a graph's metadata); else None."""
        graph = self.graph or self._cached_graph
        return graph.class_names if graph is not None else None

    @functools.cached_property
    def layer(self) -> str | None:
        """The layer the model is explained at when none is given; None when it cannot be found out."""
        graph = self.graph or self._cached_graph
        if graph is not None:
            return graph.layer
        from livecam.errors import torch_installed
        from livecam.engines.launch import RANDOM

        model = self.settings.get("model")
        if not isinstance(model, str) or model.lower().endswith(".onnx") or not torch_installed():
            return None
        log.info("finding the default layer of %s (it builds the model once)", model)
        try:
            from livecam.zoo import load_model

            return load_model(model, weights=RANDOM, device="cpu").target_layer
        except Exception as exc:  # noqa: BLE001 - then the runs compare unequal and the files are done again
            log.debug("cannot build %s: %s", model, exc)
            return None
