"""A third-party classifier graph explained in one step: conventions, class names, method, the file written.

A graph someone else exported does not say how it wants its pixels. The size
comes from a fixed input shape; class names from the graph's metadata when it
holds a list of the right length. Everything else is assumed (ImageNet's mean
and std, RGB in [0, 1], ImageNet's class names for 1000 classes, else indices)
unless the user says otherwise, and what was assumed goes into the graph's
metadata so that the header line shows it and a wrong guess is visible.
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import onnx

from livecam import choices
from livecam.errors import GraphError, LivecamError, option
from livecam.graphs.classifier import Classifier, read_classifier
from livecam.graphs.options import InputOptions
from livecam.graphs.explain import (EIGEN, InputConvention, add_explanation, choose_target, default_method, metadata,
                                    set_metadata)
from livecam.text import listed
from livecam.types import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

DEFAULT_SIZE = (224, 224)
NAME_KEYS = ("class_names", "labels", "names", "classes")  # metadata entries other tools keep class names in
MAX_PROTO = 2_000_000_000  # protobuf's limit for one file; larger graphs keep their weights in a data file


@dataclass(frozen=True)
class Explained:
    """The explained graph written: where, with what, and what livecam chose on its own."""

    path: Path
    method: str  # the graph's own (its cams output)
    layer: str
    notes: tuple[str, ...]  # e.g. why eigencam runs, what was assumed
    methods: tuple[str, ...] = ()  # every method the graph holds, ``method`` first

    def describe(self) -> str:
        """The methods, for people: 'gradcam', or 'gradcam, cam and eigencam'."""
        return listed(self.methods or (self.method,))


def imagenet_classes() -> list[str]:
    """ImageNet's 1000 class names (torchvision's, shipped with livecam: no PyTorch needed)."""
    text = resources.files("livecam.graphs").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()


def read_labels(path: Path, classes: int) -> list[str]:
    """One class name per line (blank lines at the end ignored); their count must be the graph's."""
    try:
        names = Path(path).expanduser().read_text(encoding="utf-8").rstrip("\n").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise LivecamError(f"cannot read the labels file {path} ({type(exc).__name__}); give a text file with one "
                           "class name per line") from None
    names = [name.strip() for name in names]
    if len(names) != classes:
        raise LivecamError(f"{path} names {len(names)} classes, and the graph has {classes}; give one name per line, "
                           "in the order of its outputs")
    return names


def _names_in_metadata(model: onnx.ModelProto, classes: int) -> list[str] | None:
    props = {p.key: p.value for p in model.metadata_props}
    for key in NAME_KEYS:
        if key not in props:
            continue
        try:
            value = json.loads(props[key])
        except ValueError:
            try:
                value = ast.literal_eval(props[key])
            except (ValueError, SyntaxError):
                continue
        if isinstance(value, dict):
            value = [value.get(i, value.get(str(i))) for i in range(classes)]
        if isinstance(value, list) and len(value) == classes and all(v is not None for v in value):
            return [str(v) for v in value]
    return None


def _class_names(graph: Classifier, labels: Path | None, known: Sequence[str] | None = None
                ) -> tuple[list[str], str | None]:
    """The class names, and what was assumed of them (None: they came from the user, the caller or the graph)."""
    if known is not None:
        if len(known) != graph.classes:
            raise LivecamError(f"{len(known)} class names for a graph of {graph.classes} classes")
        return list(known), None
    if labels is not None:
        return read_labels(labels, graph.classes), None
    found = _names_in_metadata(graph.model, graph.classes)
    if found is not None:
        return found, None
    if graph.classes == 1000:
        return imagenet_classes(), "ImageNet class names (1000 outputs)"
    return [str(i) for i in range(graph.classes)], "class indices as names (no labels file)"


def convention(graph: Classifier, given: InputOptions) -> InputConvention:
    """The input's conventions: the user's, the graph's fixed size, else livecam's assumptions (listed)."""
    assumed = []
    size = given.size or graph.input.size
    if size is None:
        size = DEFAULT_SIZE
        assumed.append(f"input {size[1]}x{size[0]}")
    rgb = True if given.rgb is None else given.rgb
    scale = 1.0 if given.scale is None else float(given.scale)
    if given.scale is None:
        assumed.append("pixels in [0, 1]")
    if given.rgb is None:
        assumed.append("RGB")
    order = slice(None) if rgb else slice(None, None, -1)
    mean = given.mean or tuple(m * scale for m in IMAGENET_MEAN)[order]
    std = given.std or tuple(s * scale for s in IMAGENET_STD)[order]
    if given.mean is None or given.std is None:
        assumed.append("ImageNet mean and std")
    if any(s == 0 for s in std):
        raise LivecamError(f"{option('std')} must not hold a zero")
    return InputConvention(size, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), scale, rgb, tuple(assumed))


def write_model(model: onnx.ModelProto, path: Path) -> None:
    """Check and write ``model`` to ``path`` under a hidden name, then move it into place (a data file beside it
    when it is over protobuf's 2 GB)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    large = model.ByteSize() > MAX_PROTO
    try:
        if large:
            onnx.save(model, str(partial), save_as_external_data=True, location=f"{path.name}.data")
            onnx.checker.check_model(str(partial))
        else:
            onnx.checker.check_model(model)
            onnx.save(model, str(partial))
        os.replace(partial, path)
    except onnx.checker.ValidationError as exc:
        raise GraphError(f"the explained graph did not pass onnx's checker ({str(exc).splitlines()[0]})") from None
    finally:
        partial.unlink(missing_ok=True)


def explain_graph(source: Path, target: Path, method: str | Sequence[str] | None = None, layer: str | None = None,
                  topk: int = 1,
                  target_class: str | None = None, inputs: InputOptions | None = None,
                  precision: str = "fp32", identity: tuple[str, str] | None = None,
                  class_names: Sequence[str] | None = None) -> Explained:
    """Write ``source``, a classifier graph livecam did not export, with its explanation inside, to ``target``.

    The result has livecam's file contract (input ``x``; outputs logits, classes, scores, cams; the metadata), so
    :class:`~livecam.engines.runtime.engine.RuntimeEngine` runs it. No PyTorch.

    Args:
        source: the classifier's ``.onnx`` file (external data beside it).
        target: the ``.onnx`` file to write.
        method: a method that fits in one graph, or several ("gradcam,eigencam" or a sequence: one more output
            of maps each, see :func:`livecam.engines.runtime.graph.cams_output`); None: gradcam where the head is
            global average pooling and one Linear layer, else eigencam (said in the notes).
        layer: the name of the tensor to explain; None: the map the head pools, else the last 4-D tensor.
        topk: the classes explained per image (K maps).
        target_class: explain this class (a name or index) in every image instead.
        inputs: the input's conventions; None: the graph's own where it says them, else assumptions.
        precision: the metadata's precision ("fp32"; "int8" once quantized).
        identity: (model, weights) for the metadata, when the graph is a zoo model's (default: the file's name).
        class_names: the class names, when the caller knows them (default: ``inputs.labels``, the graph's
            metadata, ImageNet's for 1000 classes, else indices).

    Example::

        >>> from livecam.graphs.third_party import explain_graph
        >>> explain_graph(Path("resnet.onnx"), Path("resnet-explained.onnx"), topk=3).notes
    """
    given = inputs or InputOptions()
    graph = read_classifier(source, given.size)
    methods = choices.export_methods(method) if method is not None else (default_method(graph, layer),)
    chosen = methods[0]
    for name in methods:
        if name not in choices.EXPORT_METHODS:
            raise LivecamError(f"{name} cannot run inside a graph; the methods that do are "
                               f"{', '.join(choices.EXPORT_METHODS)}")
    most = min(graph.classes, choices.MAX_TOPK)
    if not 1 <= topk <= most:
        raise LivecamError(f"{option('topk')} must be from 1 to {most}, not {topk}")
    explained = choose_target(graph, layer, methods)
    names, named = _class_names(graph, given.labels, class_names)
    index = None if target_class is None else choices.resolve_class(target_class, names)
    if index is not None and topk != 1:
        raise LivecamError(f"a fixed class is one explanation per image: leave out {option('topk')}")
    conv = convention(graph, given)
    notes = []
    if method is None and chosen == EIGEN:
        notes.append(f"eigencam, as the head is {graph.other_head or 'not the one at this layer'}")
    if graph.softmax_output:
        notes.append("the graph ends in a softmax: its input is taken as the logits")
    assumed = list(conv.assumed) + ([named] if named else [])
    conv = InputConvention(conv.size, conv.mean, conv.std, conv.scale, conv.rgb, tuple(assumed))
    model = add_explanation(graph, explained, methods, topk, index, conv.rgb)
    props = metadata(graph, explained, methods, topk, index, names, conv, precision)
    if identity is not None:
        props.update(model=identity[0], weights=identity[1], source="")
    set_metadata(model, props)
    write_model(model, Path(target))
    if assumed:
        notes.append("assumed: " + "; ".join(assumed))
    return Explained(Path(target), chosen, explained.name, tuple(notes), methods)
