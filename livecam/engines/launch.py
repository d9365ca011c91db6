"""Which engine runs: ONNX Runtime from an exported graph where it can, PyTorch where it must.

Two engines keep one contract, frames in and annotated frames out:

- the ONNX Runtime engine (:class:`livecam.engines.runtime.RuntimeEngine`) runs one
  exported graph that holds the model and the explanation. It needs no PyTorch:
  it runs a ``.onnx`` file from ``livecam export``, and on the CPU it is the
  default for the zoo's models too, for every method whose explanation fits in a
  graph. The graph is exported once and cached, keyed by the weights file's
  identity (path, size, modification time) and the options, so a later run
  finds it without importing PyTorch and the first frame comes within about a
  second of the command;
- the PyTorch engine (:class:`livecam.engines.pytorch.engine.TorchEngine`) runs everything else:
  Score-CAM and the guided methods, gradient methods on heads that are not
  global average pooling and one Linear layer, bf16, and the CUDA path with its
  CUDA graphs.

This module imports no PyTorch itself; it imports it only when the PyTorch side
is needed (to build a zoo model, to export it, or to run the PyTorch engine).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livecam import __version__, choices
from livecam.engines.base import AnyEngine, check_combination
from livecam.engines.compare import SETTINGS, CompareEngine, CompareOptions
from livecam.engines.runtime.graph import FORMAT
from livecam.errors import GraphError, LivecamError, option, require_torch, torch_installed
from livecam.graphs.options import InputOptions
from livecam.paths import cache_dir, check_weights_file, model_files
from livecam.render import Annotator
from livecam.smooth import check_seconds

if TYPE_CHECKING:
    from livecam.engines.runtime.engine import RuntimeEngine

log = logging.getLogger(__name__)

RANDOM = "random"


@dataclass(frozen=True)
class EngineOptions:
    """What a run asks of its engine. ``None`` means "not given": the default, or a graph's own choice."""

    model: str = choices.DEFAULT_MODEL  # a zoo name or the path of an exported .onnx graph
    weights: str | None = None  # a state-dict file, "random", or None for the model's own weights
    method: str | None = None  # default: gradcam (a .onnx graph: its own)
    layer: str | None = None
    target_class: str | None = None  # a class name or index, as typed; None: each frame's top class
    topk: int = 3  # classes labelled on each frame (with panels: explained, one panel each)
    panels: bool = False
    view: str = "overlay"
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"  # auto, torch or onnx
    graph: bool = True  # the PyTorch engine: CUDA graphs
    fold_bn: bool = True  # the PyTorch engine: BatchNorm folded into the convolution before it
    renderer: str = "auto"  # the PyTorch engine: auto, opencv or device
    colormap: str = choices.DEFAULT_COLORMAP
    alpha: float = 0.5
    threads: int | None = None  # the model's CPU threads; None: the runtime's own choice (every core)
    graph_input: InputOptions | None = None  # a third-party .onnx graph: its input's conventions, its labels
    smooth: float = 0.0  # seconds: the time constant of the maps' and scores' smoothing over time; 0: off
    compare: CompareOptions | None = None  # a second model (or method, layer, weights) side by side
    live: bool = False  # live controls (livecam.controls): graphs explain the top-K, and other methods' are made
    # a zoo model explained two ways side by side on ONNX Runtime (--compare-method): one cached graph holds both
    # methods, so that one call serves both sides (RuntimeEngine.explain_beside); the engine draws ``method``
    graph_methods: tuple[str, ...] = ()

    @property
    def is_graph_file(self) -> bool:
        return self.model.lower().endswith(".onnx")


@dataclass
class Launched:
    """The engine a run got, and what the header line says about it."""

    engine: AnyEngine  # a TorchEngine or a RuntimeEngine; ``with launched.engine:`` closes it
    backend: str  # "onnx" or "torch"; side by side with two engines: "onnx+torch" (or "torch+onnx")
    summary: str  # "efficientnet_lite0 (ImageNet ...) on ONNX Runtime CPU in fp32, gradcam of the top class at ..."
    method: str  # side by side: the first side's, or scorecam where either side runs it (the CLI warns of its cost)


Models = dict[tuple[str, str | None, str], Any]  # the models a run has loaded, by (model, weights, device)


def open_engine(options: EngineOptions) -> Launched:
    """Build the engine ``options`` ask for; bad options are one-line :class:`LivecamError`.

    With ``options.compare``, a :class:`~livecam.engines.compare.CompareEngine` of two sides, each launched
    as a run of its own would be (see :func:`compare_options`).
    """
    if options.compare is not None:
        return _compare(options)
    return _open(options, {})


def compare_options(options: EngineOptions) -> EngineOptions:
    """The second side's options of a run side by side: ``options.compare`` over the first side's.

    Without a compare model (or with the first's), the second side is the first's model with the weights,
    method and layer given for it in place of the first's: one model explained two ways. A compare model of
    its own takes its own weights and layer (its defaults where not given) and the first's method (a .onnx
    graph: its own); every other setting (class, top-k, device, backend, colours) is the run's.
    """
    given = options.compare or CompareOptions()
    first = replace(options, compare=None)
    if given.model is None or choices.canonical_model(given.model) == choices.canonical_model(options.model):
        second = replace(first, weights=given.weights or first.weights, method=given.method or first.method,
                         layer=given.layer or first.layer)
    else:
        method = given.method or (None if given.model.lower().endswith(".onnx") else first.method)
        second = replace(first, model=given.model, weights=given.weights, method=method, layer=given.layer,
                         graph_input=None)
    if options.panels:
        raise LivecamError(f"{option('panels')} does not combine with {option('compare')}: each side shows one "
                           "map; leave one of them out")
    if _resolved(second) == _resolved(first):
        raise LivecamError(f"{', '.join(option(name) for name in given.given) or option('compare')} gives the "
                           f"second side the first side's model, weights, method and layer; give it another "
                           f"{option('compare')} model, {option('compare_method')} or {option('compare_layer')}")
    return second


def _resolved(options: EngineOptions) -> EngineOptions:
    """The options with the method a zoo model runs when none is given."""
    return options if options.is_graph_file else replace(options, method=options.method or choices.DEFAULT_METHOD)


def _compare(options: EngineOptions) -> Launched:
    """Both sides, launched as their own runs would be; one load of a model both sides run in PyTorch."""
    second_options = compare_options(options)
    first_options = replace(options, compare=None)
    methods = (first_options.method or choices.DEFAULT_METHOD, second_options.method or choices.DEFAULT_METHOD)
    if (not options.is_graph_file and options.backend != "torch" and methods[0] != methods[1]
            and replace(second_options, method=first_options.method) == first_options
            and set(methods) <= set(choices.EXPORT_METHODS)):  # one model, two methods: one graph for both sides
        first_options = replace(first_options, graph_methods=methods)
        second_options = replace(second_options, graph_methods=methods)
    models: Models = {}
    first = _open(first_options, models)
    try:
        try:
            second = _open(second_options, models)
        except LivecamError as exc:  # its settings are the compare ones: named so
            raise type(exc)(_renamed(exc.render(option), options.compare)) from None
    except BaseException:
        first.engine.close()
        raise
    names = _side_names(first_options, second_options, first, second)
    engine = CompareEngine(first.engine, second.engine, names)
    backend = first.backend if first.backend == second.backend else f"{first.backend}+{second.backend}"
    slow = "scorecam" if "scorecam" in (first.method, second.method) else first.method
    return Launched(engine, backend, f"{first.summary}; beside it {second.summary}", slow)


def _renamed(message: str, given: CompareOptions | None) -> str:
    """A message about the second side, each setting named as its compare setting (layer -> compare_layer), and
    led by the compare settings given where it names none."""
    for name, setting in SETTINGS.items():
        message = message.replace(option(name), option(setting))
    named = [option(setting) for setting in (given.given if given is not None else [])]
    if named and not any(name in message for name in map(option, SETTINGS.values())):
        message = f"{', '.join(named)}: {message}"
    return message


def _side_names(first: EngineOptions, second: EngineOptions, a: Launched, b: Launched) -> tuple[str, str]:
    """What each side's corner says: its model and method, and its layer where only the layers differ."""
    def model(options: EngineOptions) -> str:
        return Path(options.model).stem if options.is_graph_file else choices.canonical_model(options.model)

    names = [f"{model(o)} {launched.method}" for o, launched in ((first, a), (second, b))]
    if names[0] == names[1]:
        names = [f"{name} at {launched.engine.layer}" for name, launched in zip(names, (a, b), strict=True)]
    if names[0] == names[1]:  # the same model, method and layer: different weights
        names = [f"{name} ({Path(o.weights).name if o.weights else 'own weights'})"
                 for name, o in zip(names, (first, second), strict=True)]
    return names[0], names[1]


def _open(options: EngineOptions, models: Models) -> Launched:
    """One engine (``models``: the models loaded so far, shared by the sides of a run side by side)."""
    _check_names(options)
    launched = _build(options, models)
    if launched.engine.smooth_s > 0:
        launched.summary += f"; smoothed over time, time constant {launched.engine.smooth_s:g} s"
    return launched


def _build(options: EngineOptions, models: Models) -> Launched:
    """The engine: a graph file's, a zoo model's on ONNX Runtime where it can run, else PyTorch's."""
    annotator = Annotator(options.colormap, options.alpha)
    if options.is_graph_file:
        return _graph_file(options, annotator)
    if options.graph_input is not None and options.graph_input.given:
        flags = ", ".join(option(name) for name in options.graph_input.given)
        raise LivecamError(f"{flags} describe the input of an ONNX classifier that livecam did not export; "
                           f"{options.model} knows its own")
    if options.weights not in (None, RANDOM):
        check_weights_file(Path(options.weights).expanduser())
    reason = runtime_refusal(options)
    if reason is not None and not torch_installed() and runtime_refusal(options, gpus=0) is None:
        reason = None  # no PyTorch for the CUDA path: ONNX Runtime takes the GPU
        options = replace(options, backend="onnx")
    if reason is None:
        launched = _zoo_on_runtime(options, annotator, models)
        if launched is not None:
            return launched
    elif options.backend == "onnx":
        raise LivecamError(f"{option('backend')} onnx cannot run this: {reason}; use {option('backend')} torch")
    else:
        log.debug("PyTorch engine: %s", reason)
    return _torch_engine(options, annotator, models)


def _load(options: EngineOptions, device: str, models: Models) -> Any:
    """The zoo model, loaded once per run: the sides of a run side by side share it (each engine works on
    its own copy, or hooks it only during its own call)."""
    from livecam.zoo import load_model

    key = (options.model, options.weights, device)
    if key not in models:
        models[key] = load_model(options.model, weights=options.weights, device=device)
    return models[key]


def _check_names(options: EngineOptions) -> None:
    for value, allowed, what in ((options.method, choices.METHODS, "method"), (options.view, choices.VIEWS, "view"),
                                 (options.backend, choices.BACKENDS, "backend"),
                                 (options.precision, choices.PRECISIONS, "precision")):
        if value is not None and value not in allowed:
            raise LivecamError(f"unknown {what} '{value}'{choices.suggest(value, list(allowed))}; "
                               f"choose one of {', '.join(allowed)}")
    check_combination(options.panels, options.topk, options.view, options.target_class)
    check_seconds(options.smooth)


def runtime_refusal(options: EngineOptions, gpus: int | None = None) -> str | None:
    """Why a zoo model should not run on ONNX Runtime here (``None``: it should).

    ``gpus`` (default: what the CUDA driver reports) decides ``--device auto``:
    with a GPU, the PyTorch engine's CUDA path (CUDA graphs, fp16) runs.
    """
    method = options.method or choices.DEFAULT_METHOD
    if options.backend == "torch":
        return f"{option('backend')} torch"
    if method not in choices.EXPORT_METHODS:
        return f"{method} does not fit in one graph (it needs a second pass over the input)"
    if options.view != "overlay":
        return "the guided view needs a backward pass to the input"
    if options.precision == "bf16":
        return "ONNX Runtime runs fp32 and fp16 graphs, not bf16"
    if options.weights == RANDOM:
        return "an untrained model is not worth exporting and caching"
    device = options.device.strip().lower()
    if options.backend == "auto":
        if device.startswith("cuda"):
            return "on CUDA the PyTorch engine runs (CUDA graphs)"
        if device == "auto":
            if gpus is None:
                from livecam.engines.runtime.session import cuda_device_count

                gpus = cuda_device_count()
            if gpus > 0:
                return "on CUDA the PyTorch engine runs (CUDA graphs)"
    return None


def _runtime_device(options: EngineOptions) -> str:
    device = options.device.strip().lower()
    return "cpu" if device == "auto" and options.backend == "auto" else device


def _graph_file(options: EngineOptions, annotator: Annotator) -> Launched:
    """A ``.onnx`` graph: from ``livecam export``, ONNX Runtime alone with the graph's own choices; from anywhere
    else, explained once into the cache (no PyTorch) and then the same."""
    from livecam.engines.runtime.engine import RuntimeEngine
    from livecam.engines.runtime.graph import GraphInfo, read_metadata

    path = Path(options.model).expanduser()
    if not path.is_file():
        raise LivecamError(f"{path} does not exist; export a model with 'livecam export {option('output')} "
                           f"{path.name}'")
    for given, what in ((options.weights, option("weights")),
                        (options.backend == "torch" or None, f"{option('backend')} torch"),
                        (options.view != "overlay" or None, f"{option('view')} guided")):
        if given:
            raise LivecamError(f"{what} does not apply to an ONNX graph, which ONNX Runtime runs with its weights "
                               "inside; pass a zoo model name instead")
    try:
        meta = read_metadata(path)
    except GraphError:  # damaged: reading it as any classifier says how, in onnx's words
        meta = {}
    if "livecam_format" not in meta:
        path = _explained_graph(options, path)
    elif options.graph_input is not None and options.graph_input.given:
        flags = ", ".join(option(name) for name in options.graph_input.given)
        raise LivecamError(f"{path.name} is a livecam graph, which says how it takes its input; leave out {flags}")
    held = GraphInfo.read(path).all_methods
    engine = RuntimeEngine(path, options.device, annotator, options.topk, options.panels, threads=options.threads,
                           smooth=options.smooth, method=options.method if options.method in held else None)
    info = engine.info
    more = ",".join((*info.all_methods, options.method or "")) if len(info.all_methods) > 1 else options.method
    for given, own, what, again in ((options.method, info.all_methods, "method", more),
                                    (options.layer, (info.layer,), "layer", options.layer)):
        if given is not None and given not in own:
            raise LivecamError(f"{path.name} explains with {what} {', '.join(own)}, not {given}; export it again "
                               f"with {option(what)} {again}, or leave {option(what)} out")
    if options.precision not in ("auto", info.precision):
        raise LivecamError(f"{path.name} runs in {info.precision}; export it again with {option('precision')} "
                           f"{options.precision}, or leave {option('precision')} out")
    if options.target_class is not None:
        from livecam.choices import resolve_class

        wanted = resolve_class(options.target_class, info.class_names)
        if info.target_class is None:
            raise LivecamError(f"{path.name} explains {info.describe_class()} of each frame; to explain one class "
                               f"in every frame, export it with {option('class')} {options.target_class}")
        if wanted != info.target_class:
            raise LivecamError(f"{path.name} explains class '{info.class_names[info.target_class]}', not "
                               f"'{info.class_names[wanted]}'; export it again with {option('class')} "
                               f"{options.target_class}")
    return Launched(engine, "onnx", _runtime_summary(engine), engine.method)


def _explained_graph(options: EngineOptions, path: Path) -> Path:
    """A classifier graph livecam did not export, with its explanation inside: cached, made once without PyTorch."""
    if options.precision not in ("auto", "fp32"):
        raise LivecamError(f"{path.name} runs in its own precision; leave {option('precision')} out (for int8, "
                           f"'livecam export {option('from_onnx')} {path.name} {option('precision')} int8')")
    k = options.topk if options.panels else 1
    given = options.graph_input or InputOptions()
    cached = graph_cache_path(str(path), [path], options.method or "", options.layer, k, options.target_class,
                              "fp32", extra=given.key())
    if cached.is_file():
        return cached
    from livecam.graphs.third_party import explain_graph

    cached.parent.mkdir(parents=True, exist_ok=True)
    explained = explain_graph(path, cached, method=options.method, layer=options.layer, topk=k,
                              target_class=options.target_class, inputs=given)
    log.info("explained %s with %s at %s, once (later runs start from %s)", path.name, explained.method,
             explained.layer, cached.parent)
    return cached


def _runtime_summary(engine: RuntimeEngine) -> str:
    info = engine.info
    weights = f" ({info.weights})" if info.weights else ""
    layout = f" ({info.layout})" if info.layout else ""
    why = ""
    if info.source and info.method == "eigencam" and not info.head.startswith("global average pooling"):
        why = f"; eigencam, as the head is {info.head}"
    assumed = f"; assumed: {info.assumed}" if info.assumed else ""
    others = [m for m in info.all_methods if m != engine.method]
    held = f" (the file also holds {', '.join(others)})" if others else ""
    return (f"{info.model}{weights} on {engine.description}, {engine.method}{held} of {info.describe_class()} at "
            f"layer {info.layer}{layout}{why}{assumed}")


def weights_file(model: str, weights: str | None) -> Path | None:
    """The one file a model's weights come from, when that is known without PyTorch; else None."""
    files = model_files(model, weights)
    return files[-1] if files else None


# the code an exported graph is made of: a change to any of it makes new graphs
_EXPORT_SOURCES = ("export", "engines/pytorch/device_step.py", "cams", "zoo", "graphs")


@functools.lru_cache(maxsize=1)
def _export_code() -> str:
    """A hash of the source files an exported graph is made of (about 100 kB to read; no PyTorch)."""
    root = Path(__file__).parent.parent  # the package
    digest = hashlib.sha256()
    for name in _EXPORT_SOURCES:
        for path in sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def graph_cache_path(model: str, weights: Path | Sequence[Path], method: str, layer: str | None, topk: int,
                     target_class: str | None, precision: str, extra: Sequence[object] = ()) -> Path:
    """Where the exported graph for these options is cached: keyed by the model files' identity, not their bytes.

    Hashing the weights would need PyTorch and half a second; the path, size and
    modification time of a file change whenever its contents do. ``weights`` is
    the weights file, or every file the model is made of
    (:func:`livecam.paths.model_files`: a Hugging Face folder's config, a
    factory's source). The key also holds livecam's version and a hash of the
    exporter's and the methods' code, and ``extra`` (a third-party graph's input
    options). The file name starts with the model's name, made safe for a file
    name (a folder or ``net.py:build`` has slashes and colons).
    """
    files = [weights] if isinstance(weights, Path) else list(weights)
    identity = [[str(f), stat.st_size, stat.st_mtime_ns] for f, stat in ((f, f.stat()) for f in files)]
    fields = [FORMAT, __version__, _export_code(), choices.canonical_model(model), identity, method, layer or "",
              topk, (target_class or "").strip().lower(), precision, list(extra)]
    key = hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:20]
    slug = re.sub(r"[^a-z0-9_.-]+", "-", choices.canonical_model(model)).strip("-.")[-48:] or "model"
    return cache_dir() / "graphs" / f"{slug}-{method or 'auto'}-{key}.onnx"


def _zoo_on_runtime(options: EngineOptions, annotator: Annotator, models: Models | None = None) -> Launched | None:
    """A zoo model on ONNX Runtime: the cached graph when there is one (no PyTorch), else exported now.

    Returns None when the model's head cannot hold the method's explanation and
    the backend is ``auto``: the PyTorch engine runs instead.
    """
    from livecam.engines.runtime.engine import RuntimeEngine

    method = options.method or choices.DEFAULT_METHOD
    held = ",".join(options.graph_methods) or method
    precision, k, path = _graph_key(options, held)

    def start(graph: Path) -> RuntimeEngine:
        engine = RuntimeEngine(graph, _runtime_device(options), annotator, options.topk, options.panels,
                               threads=options.threads, smooth=options.smooth, method=method)
        if options.live:  # another method: its graph from the cache, or exported, in the background
            engine.methods = tuple(dict.fromkeys((*engine.info.all_methods, *choices.EXPORT_METHODS)))
            engine.graph_for = functools.partial(_method_graph, options)
        return engine

    if path is not None and path.is_file():
        try:
            engine = start(path)
        except GraphError as exc:  # cut short by a full disk, or edited: made again, as a damaged demo clip is
            log.warning("the cached graph %s is damaged (%s); exporting it again", path.name, str(exc).split(";")[0])
            path.unlink(missing_ok=True)
        else:
            return Launched(engine, "onnx", _runtime_summary(engine), method)
    path = _export_to_cache(options, held, k, precision, path, {} if models is None else models)
    if path is None and options.graph_methods:  # the other side's method does not fit this head: a graph each
        return _zoo_on_runtime(replace(options, graph_methods=()), annotator, models)
    if path is None:
        return None
    engine = start(path)
    return Launched(engine, "onnx", _runtime_summary(engine), method)


def _graph_key(options: EngineOptions, method: str) -> tuple[str, int, Path | None]:
    """The precision, the classes explained per frame and the cached graph's path (when the files are known)."""
    precision = "fp16" if options.precision == "fp16" else "fp32"
    k = options.topk if options.panels or (options.live and options.target_class is None) else 1
    known = model_files(options.model, options.weights)
    path = graph_cache_path(options.model, known, method, options.layer, k, options.target_class,
                            precision) if known else None
    return precision, k, path


def _method_graph(options: EngineOptions, method: str) -> Path:
    """The zoo model's graph for ``method`` (live controls): from the cache, else exported (PyTorch, once); a
    one-line LivecamError when the method does not fit in a graph for this model."""
    options = replace(options, method=method, backend="onnx")
    precision, k, path = _graph_key(options, method)
    if path is not None and path.is_file():
        return path
    exported = _export_to_cache(options, method, k, precision, path, {})
    if exported is None:
        raise LivecamError(f"{method} does not fit in one graph for {options.model}")
    return exported


def _export_to_cache(options: EngineOptions, method: str, k: int, precision: str, path: Path | None,
                     models: Models) -> Path | None:
    """Export the zoo model's explainer graph into the cache (PyTorch, once); None when it cannot hold the method."""
    require_torch(f"exporting {options.model} for ONNX Runtime (once; later runs find it in the cache)")
    from livecam.export import export_explainer

    loaded = _load(options, "cpu", models)
    if path is None:  # torchvision's or timm's own weights, a factory in a package: their files are known now
        path = graph_cache_path(options.model, loaded.files, method, options.layer, k, options.target_class,
                                precision)
        if path.is_file() and loaded.files:
            return path
    target = None if options.target_class is None else choices.resolve_class(options.target_class, loaded.class_names)
    if options.layer is None and options.backend != "onnx":
        from livecam.export.explainer_graph import exportable

        try:  # the default layer's head is known now: say nothing of an export that cannot be
            for name in choices.export_methods(method):
                exportable(loaded, name)
        except LivecamError as exc:
            log.info("running %s in PyTorch: %s", method, exc)
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning("exporting %s with %s for ONNX Runtime, once (a few seconds; later runs start from %s)",
                loaded.name, method, path.parent)
    try:
        export_explainer(loaded, path, method=method, layer=options.layer, topk=k, target_class=target,
                         precision=precision)
    except LivecamError as exc:  # the head has no closed form for the method, or the exporter failed
        if options.backend == "onnx":
            raise
        log.info("running %s in PyTorch: %s", method, exc)
        return None
    return path


def _torch_engine(options: EngineOptions, annotator: Annotator, models: Models | None = None) -> Launched:
    require_torch(f"running {options.model} with {options.method or choices.DEFAULT_METHOD} here "
                  f"({runtime_refusal(options) or 'the PyTorch engine'})")
    from livecam.engines.pytorch.engine import TorchEngine

    method = options.method or choices.DEFAULT_METHOD
    device = options.device
    if device.strip().lower().startswith("tensorrt"):
        raise LivecamError(f"{option('device')} tensorrt runs exported graphs on ONNX Runtime, and this run needs "
                           f"PyTorch ({runtime_refusal(options) or 'its method'}); use {option('device')} cuda")
    if options.threads:
        from livecam.engines.pytorch import set_threads

        set_threads(options.threads)
    loaded = _load(options, device, {} if models is None else models)
    if options.weights == RANDOM:
        log.warning("%s random: the model is untrained, its classes and maps mean nothing", option("weights"))
    target = None if options.target_class is None else choices.resolve_class(options.target_class,
                                                                             loaded.class_names)
    engine = TorchEngine(loaded, method=method, layer=options.layer, target_class=target, topk=options.topk,
                    annotator=annotator, precision=options.precision, graph=options.graph, panels=options.panels,
                    view=options.view, fold_bn=options.fold_bn, renderer=options.renderer, smooth=options.smooth)
    what = f"class '{loaded.class_names[target]}'" if target is not None else "the top class"
    summary = (f"{loaded.title} ({loaded.weights}) on {engine.description}, {method} of {what} at layer "
               f"{engine.layer} ({engine.explainer.info.layout.describe()})")
    return Launched(engine, "torch", summary, method)
