"""The explanation written into a third-party classifier graph, with ``onnx`` alone: no PyTorch.

The result keeps livecam's file contract (see :mod:`livecam.export.explainer_graph`):
input ``x`` float32 (N, 3, H, W), RGB normalized with the metadata's mean and
std; outputs ``logits``, ``classes``, ``scores`` and ``cams``; the same
metadata. So the ONNX Runtime engine, ``livecam bench`` and the README's
onnxruntime-only example take it unchanged.

- **The input.** Whatever the graph wants (BGR, NHWC, [0, 255] with its own
  mean, float16) is reached from ``x`` by at most a channel flip, a transpose and
  a cast: the mean and std in the metadata are the graph's own, divided by its
  scale and put in RGB order, so that no arithmetic is added in front.
- **The maps.** For a global-average-pooling -> Linear head with weight W
  (classes x C) over a map A of h x w cells, d y^c / d A^k_ij = W_ck / (h w) =: g_ck
  at every pixel (Selvaraju et al. 2017, section 3.1), and every method of the
  CAM family is one weight per channel, so the map is one matrix product
  relu(V @ A) per class, V given by the method's paper formula with that g:
  CAM V = W_c; Grad-CAM and HiResCAM V = g_c; XGrad-CAM V = g_c where sum_ij A^k != 0;
  LayerCAM V = relu(g_c); Grad-CAM++ V = h w g^2 / (2 g^2 + sum_ij A^k g^3) relu(g);
  counterfactual Grad-CAM V = -g_c; Finer-CAM V = g_c - sum_j q_j g_j, over the
  classes j whose logits lie nearest y^c, q their softmax among themselves.
  These are what :mod:`livecam.cams.gradient` computes from the same closed form,
  so the maps equal livecam's own export of the same weights.
- **Eigen-CAM** (any head) is the power method of
  :func:`livecam.cams.activation.eigen_maps_power`, written out node by node.

Everything after the model runs in float32 (ARCHITECTURE: fp16 and CAM arithmetic
don't mix), and every added node is named under ``livecam/``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from livecam import __version__, choices
from livecam.engines.runtime.graph import FORMAT, cams_output, describe_outputs
from livecam.errors import GraphError, LivecamError, option
from livecam.graphs.builder import MIN_OPSET, Builder, default_opset, float_output
from livecam.graphs.classifier import NCHW, NHWC, Classifier, last_map, tensor_shapes
from livecam.types import Preprocess

EIGEN = "eigencam"
SQUARINGS = 12  # as livecam.cams.activation.eigen_maps_power
FLAT_SIGN = 1e-3  # as livecam.cams.activation.eigen_sign
NORMALIZE_EPS = 1e-12  # as livecam.cams.normalize_maps
OUTPUT_NAMES = ("x", "logits", "classes", "scores", "cams",
                *(f"cams_{method}" for method in choices.EXPORT_METHODS))


@dataclass(frozen=True)
class Target:
    """The tensor explained: its name, its layout and its (channels, h, w); ``exact``: the head's pooled map."""

    name: str
    layout: str
    channels: int
    grid: tuple[int, int]
    exact: bool


def map_layout(shape: Sequence[int | str], size: tuple[int, int], prefer: str) -> str | None:
    """NCHW or NHWC for a 4-D tensor of ``shape`` in a graph fed ``size`` images: the pair of axes that tiles the
    image with one stride (a cell is ``size / grid`` pixels both ways); ``prefer`` where both do; None: neither."""
    def tiles(h: int | str, w: int | str) -> bool:
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            return False
        return h <= size[0] and w <= size[1] and abs(size[0] / h - size[1] / w) <= max(size[0] / h, 1) * 0.5

    fits = [layout for layout, (a, b) in ((NCHW, (2, 3)), (NHWC, (1, 2))) if tiles(shape[a], shape[b])]
    return prefer if prefer in fits else (fits[0] if fits else None)


def choose_target(graph: Classifier, layer: str | None, methods: str | Sequence[str]) -> Target:
    """The tensor to explain: ``layer``, else the head's pooled map, else the last 4-D tensor; each method checked
    against it."""
    head = graph.head
    shapes = tensor_shapes(graph.model)
    name = layer or (head.feature if head is not None else last_map(graph.model, graph.logits))
    if name is None or name not in shapes:
        known = [n for n, s in shapes.items() if len(s) == 4][-5:]
        raise LivecamError(f"the graph has no tensor '{layer}'; 4-D tensors near its end: {', '.join(known)}")
    shape = shapes[name]
    exact = head is not None and name == head.feature
    prefer = head.layout if head is not None else graph.input.layout
    layout = head.layout if exact and head is not None else map_layout(shape, graph.input.size or (224, 224), prefer)
    if len(shape) != 4 or layout is None:
        raise LivecamError(f"the tensor '{name}' is {tuple(shape)}, not a (N, C, H, W) or (N, H, W, C) map on the "
                           f"image's grid; pick another with {option('layer')}")
    channels, h, w = (shape[1], shape[2], shape[3]) if layout == NCHW else (shape[3], shape[1], shape[2])
    if not all(isinstance(d, int) and d > 0 for d in (channels, h, w)):
        raise LivecamError(f"the tensor '{name}' has no fixed size {tuple(shape)}; pick another with {option('layer')}")
    for method in (methods,) if isinstance(methods, str) else methods:
        if method in choices.GAP_LINEAR_EXPORT_METHODS and not exact:
            if head is None:
                why = f"the graph's head is {graph.other_head}"
            else:
                why = f"its gradient has a closed form only at '{head.feature}', the map its head pools"
            raise LivecamError(f"{method} cannot run inside this graph at '{name}': {why}; use {option('method')} "
                               "eigencam, which works for any head")
    return Target(name, layout, int(channels), (int(h), int(w)), exact)


def default_method(graph: Classifier, layer: str | None) -> str:
    """gradcam where the head has a closed form (and the layer is its map), else eigencam."""
    head = graph.head
    return choices.DEFAULT_METHOD if head is not None and layer in (None, head.feature) else EIGEN


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    graph = model.graph
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for collection in (graph.input, graph.output, graph.value_info):
        for info in collection:
            if info.name == old:
                info.name = new
    for tensor in graph.initializer:
        if tensor.name == old:
            tensor.name = new


def _freed(name: str) -> str:
    """The name a user's tensor takes when it carries the name of livecam's input or outputs."""
    return f"{name}__graph" if name in OUTPUT_NAMES else name


def _free_names(model: onnx.ModelProto) -> None:
    """Rename the user's tensors that carry the names of livecam's input and outputs (see :func:`_freed`)."""
    used = {name for node in model.graph.node for name in [*node.input, *node.output]}
    used |= {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    for name in OUTPUT_NAMES:
        if name in used:
            _rename(model, name, _freed(name))


def _adapter(b: Builder, graph: Classifier, rgb: bool) -> onnx.ValueInfoProto:
    """Input ``x`` (N, 3, H, W) float32 RGB, turned into what the graph takes; the graph's own input removed."""
    source = graph.input
    h, w = source.size or (224, 224)
    x = "x"
    if not rgb:
        x = b.op("Gather", x, b.const(np.array([2, 1, 0], np.int64), "bgr"), axis=1, name="to_bgr")
    if source.layout == NHWC:
        x = b.op("Transpose", x, perm=[0, 2, 3, 1], name="to_nhwc")
    if source.elem_type != TensorProto.FLOAT:
        x = b.op("Cast", x, to=source.elem_type, name="to_input_type")
    b.op("Identity", x, output=_freed(source.name), name="input")
    kept = [i for i in b.graph.input if i.name != _freed(source.name)]
    del b.graph.input[:]
    b.graph.input.extend(kept)
    return float_output("x", [source.batch or "batch", 3, h, w])


def _flat_map(b: Builder, target: Target) -> str:
    """The target as float32 (N, C, h w)."""
    acts = b.op("Cast", _freed(target.name), to=TensorProto.FLOAT, name="acts")
    if target.layout == NHWC:
        acts = b.op("Transpose", acts, perm=[0, 3, 1, 2], name="to_nchw")
    h, w = target.grid
    return b.op("Reshape", acts, b.const(np.array([0, target.channels, h * w], np.int64), "flat"))


def _method_weights(b: Builder, method: str, rows: str, flat: str, cells: int) -> str:
    """V (N, K, C), the weight of each channel in the class's map (see the module docstring)."""
    if method == "cam":
        return rows
    g = b.op("Div", rows, b.scalar(float(cells)), name="gradient")
    if method in ("gradcam", "hirescam", "finercam"):  # Finer-CAM's rows are already its contrast
        return g
    if method == "counterfactual":
        return b.op("Neg", g)
    if method == "layercam":
        return b.op("Relu", g)
    total = b.op("Transpose", b.reduce("ReduceSum", flat, [2]), perm=[0, 2, 1])  # (N, 1, C): sum_ij A^k
    if method == "xgradcam":
        return b.op("Where", b.op("Not", b.op("Equal", total, b.scalar(0.0))), g, b.scalar(0.0))
    if method == "gradcampp":
        g2 = b.op("Mul", g, g)
        den = b.op("Add", b.op("Mul", b.scalar(2.0), g2), b.op("Mul", b.op("Mul", total, g2), g))
        alpha = b.safe_divide(g2, den)
        return b.op("Mul", b.op("Mul", alpha, b.op("Relu", g)), b.scalar(float(cells)))
    raise LivecamError(f"unknown method '{method}'")


def _finer_rows(b: Builder, weight: str, rows: str, logits: str, classes: str, total: int) -> str:
    """W_c - sum_j q_j W_j, (N, K, C): Finer-CAM's contrast of the head's rows, as
    :func:`livecam.cams.gradient.finer_contrast` (j: the classes whose logits lie nearest y^c; q: their softmax
    among themselves)."""
    count = min(choices.FINER_REFERENCES, total - 1)
    if count <= 0:
        return rows
    y = b.unsqueeze(logits, [1])  # (N, 1, classes)
    target = b.unsqueeze(b.op("GatherElements", logits, classes, axis=1), [2])  # (N, K, 1): y^c
    distance = b.op("Abs", b.op("Sub", y, target))  # (N, K, classes)
    own = b.op("Equal", b.const(np.arange(total, dtype=np.int64).reshape(1, 1, total), "class_range"),
               b.unsqueeze(classes, [2]))
    distance = b.op("Where", own, b.scalar(float("inf")), distance)
    nearest = b.op_many("TopK", distance, b.const(np.array([count], np.int64), "references"), outputs=2, axis=2,
                        largest=0)[1]  # (N, K, count)
    q = b.op("Softmax", b.op("GatherElements", b.op("Expand", y, b.op("Shape", distance)), nearest, axis=2), axis=2)
    mixed = b.op("Mul", b.op("Gather", weight, nearest, axis=0), b.unsqueeze(q, [3]))  # (N, K, count, C)
    return b.op("Sub", rows, b.reduce("ReduceSum", mixed, [2], keepdims=False), name="finer_rows")


def _normalize(b: Builder, maps: str) -> str:
    """Min-max over the last axis of (N, K, hw) maps in float32; a flat map is all zeros."""
    lo = b.reduce("ReduceMin", maps, [2])
    span = b.op("Sub", b.reduce("ReduceMax", maps, [2]), lo)
    return b.safe_divide(b.op("Sub", maps, lo), span, b.op("Greater", span, b.scalar(NORMALIZE_EPS)))


def _unit_rows(b: Builder, v: str) -> str:
    """Each (N, n) row over its norm; a zero row stays zero."""
    norm = b.op("Sqrt", b.reduce("ReduceSum", b.op("Mul", v, v), [1]))
    return b.safe_divide(v, norm)


def _eigen(b: Builder, flat: str, channels: int, cells: int) -> str:
    """Eigen-CAM's (N, 1, hw) maps by the power method, as :func:`livecam.cams.activation.eigen_maps_power`."""
    x = b.op("Transpose", flat, perm=[0, 2, 1], name="rows")  # (N, hw, C)
    x = b.op("Sub", x, b.reduce("ReduceMean", x, [1]), name="centred")
    xt = b.op("Transpose", x, perm=[0, 2, 1])
    pixels_side = cells <= channels
    gram = b.op("MatMul", x, xt) if pixels_side else b.op("MatMul", xt, x)
    tiny = b.scalar(float(np.finfo(np.float32).tiny))
    for _ in range(SQUARINGS):
        gram = b.op("Div", gram, b.op("Max", b.reduce("ReduceMax", gram, [1, 2]), tiny))
        gram = b.op("MatMul", gram, gram)
    size = cells if pixels_side else channels
    diagonal = b.reduce("ReduceSum", b.op("Mul", gram, b.const(np.eye(size, dtype=np.float32), "eye")), [2],
                        keepdims=False)
    best = b.op("ArgMax", diagonal, axis=1, keepdims=1)  # (N, 1)
    pick = b.op("Cast", b.op("Equal", b.const(np.arange(size, dtype=np.int64).reshape(1, 1, size), "range"),
                             b.unsqueeze(best, [2])), to=TensorProto.FLOAT)
    column = b.reduce("ReduceSum", b.op("Mul", gram, pick), [2])  # (N, size, 1): the chosen column
    v = b.op("MatMul", xt, column) if pixels_side else column  # (N, C, 1)
    v = b.squeeze(v, [2])
    projection = b.squeeze(b.op("MatMul", x, b.unsqueeze(_unit_rows(b, v), [2])), [2])  # (N, hw)
    return b.unsqueeze(_eigen_sign(b, projection, flat), [1])


def _eigen_sign(b: Builder, projection: str, flat: str) -> str:
    """:func:`livecam.cams.activation.eigen_sign`: by the centred channel mean, or the peak where that is flat."""
    mean_act = b.squeeze(b.reduce("ReduceMean", flat, [1]), [1])  # (N, hw)
    centred = b.op("Sub", mean_act, b.reduce("ReduceMean", mean_act, [1]))
    one, minus = b.scalar(1.0), b.scalar(-1.0)
    zero = b.scalar(0.0)
    by_mean = b.op("Where", b.op("Less", b.reduce("ReduceSum", b.op("Mul", projection, centred), [1]), zero),
                   minus, one)
    peak = b.op("GatherElements", projection, b.op("ArgMax", b.op("Abs", projection), axis=1, keepdims=1), axis=1)
    by_peak = b.op("Where", b.op("Less", peak, zero), minus, one)
    spread = b.op("Sqrt", b.reduce("ReduceMean", b.op("Mul", centred, centred), [1]))
    rows = b.op("Reshape", flat, b.const(np.array([0, -1], np.int64), "rows"))
    scale = b.op("Sqrt", b.reduce("ReduceMean", b.op("Mul", rows, rows), [1]))
    flat_mean = b.op("Not", b.op("Greater", spread, b.op("Mul", scale, b.scalar(FLAT_SIGN))))
    return b.op("Mul", projection, b.op("Where", flat_mean, by_peak, by_mean))


def add_explanation(graph: Classifier, target: Target, methods: str | Sequence[str], topk: int,
                    target_class: int | None, rgb: bool = True) -> onnx.ModelProto:
    """A copy of the classifier with input ``x`` and outputs logits, classes, scores and cams (no metadata), and
    ``cams_<method>`` for each method after the first (see :func:`livecam.engines.runtime.graph.cams_output`)."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    opset = default_opset(graph.model)
    if opset < MIN_OPSET:
        raise GraphError(f"{graph.path} is opset {opset}; livecam explains opset {MIN_OPSET} and newer (convert it "
                         "with onnx.version_converter)")
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    _free_names(model)
    b = Builder(model.graph, opset)
    before = len(model.graph.node)
    x_info = _adapter(b, graph, rgb)
    nodes = list(model.graph.node)  # the adapter's nodes go first: a graph's nodes are in topological order
    del model.graph.node[:]
    model.graph.node.extend(nodes[before:] + nodes[:before])
    logits = b.op("Cast", _freed(graph.logits), to=TensorProto.FLOAT, name="logits", output="logits")
    if target_class is None:
        classes = b.op_many("TopK", logits, b.const(np.array([topk], np.int64), "k"), outputs=2, axis=1)[1]
    else:
        batch = b.shape_of(logits, 0, 1)
        classes = b.op("Expand", b.const(np.array([[target_class]], np.int64), "class"),
                       b.concat(batch, b.const(np.array([1], np.int64), "one")))
    classes = b.op("Identity", classes, output="classes")
    b.op("GatherElements", b.op("Softmax", logits, axis=1), classes, axis=1, output="scores")
    flat = _flat_map(b, target)
    h, w = target.grid
    weight = rows = None
    if set(methods) - {EIGEN}:
        assert graph.head is not None
        weight = b.const(graph.head.weight.astype(np.float32), "head_weight")
        rows = b.op("Gather", weight, classes, axis=0)
    batch_dim = graph.input.batch or "batch"
    outputs = [float_output("logits", [batch_dim, graph.classes]),
               float_output("classes", [batch_dim, topk], TensorProto.INT64), float_output("scores", [batch_dim, topk])]
    for method in methods:
        if method == EIGEN:
            maps = _normalize(b, _eigen(b, flat, target.channels, h * w))  # (N, 1, hw), the same for each class
            maps = b.op("Expand", maps, b.concat(b.shape_of(classes, 0, 2),
                                                 b.const(np.array([h * w], np.int64), "hw")))
        else:
            assert weight is not None and rows is not None
            chosen = _finer_rows(b, weight, rows, logits, classes, graph.classes) if method == "finercam" else rows
            weights = _method_weights(b, method, chosen, flat, h * w)
            maps = _normalize(b, b.op("Relu", b.op("MatMul", weights, flat)))
        name = cams_output(methods, method)
        b.op("Reshape", maps, b.const(np.array([0, topk, h, w], np.int64), "maps"), output=name)
        outputs.append(float_output(name, [batch_dim, topk, h, w]))
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    model.graph.input.insert(0, x_info)
    del model.graph.value_info[:]  # inferred for the old input; ONNX Runtime infers them again
    return model


@dataclass(frozen=True)
class InputConvention:
    """How the graph wants its pixels: value = (p * scale - mean) / std per channel in the graph's order
    (RGB, or BGR with ``rgb`` False), p the pixel in [0, 1]; and ``assumed``, what livecam guessed."""

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    rgb: bool
    assumed: tuple[str, ...] = ()

    def preprocess(self) -> Preprocess:
        """The RGB [0, 1] mean and std of input ``x``: the graph's own over its scale, in RGB order."""
        order = slice(None) if self.rgb else slice(None, None, -1)
        mean = tuple(m / self.scale for m in self.mean)[order]
        std = tuple(s / self.scale for s in self.std)[order]
        return Preprocess(self.size, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))


def metadata(graph: Classifier, target: Target, methods: str | Sequence[str], topk: int, target_class: int | None,
             class_names: Sequence[str], convention: InputConvention, precision: str = "fp32") -> dict[str, str]:
    """The metadata livecam's own graphs carry, for a third-party graph explained (see graphs.GraphInfo)."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    pre = convention.preprocess()
    h, w = target.grid
    head = graph.head
    if head is not None:
        head_text = f"global average pooling and one Linear layer: {head.chain}"
    else:
        head_text = graph.other_head
    return {
        "livecam_format": str(FORMAT),
        "livecam_version": __version__,
        "model": graph.path.stem,
        "weights": graph.path.name,
        "layer": target.name,
        "method": methods[0],
        "methods": json.dumps(list(methods)),
        "topk": str(topk),
        "class": "" if target_class is None else str(target_class),
        "class_names": json.dumps(list(class_names)),
        "mean": json.dumps([float(m) for m in pre.mean]),
        "std": json.dumps([float(s) for s in pre.std]),
        "input_size": json.dumps(list(convention.size)),
        "input": "tensor",
        "precision": precision,
        "feature_size": json.dumps([h, w]),
        "layout": f"{target.layout.upper()} {h}x{w}",
        "head": head_text,
        "assumed": "; ".join(convention.assumed),
        "source": f"third-party graph {graph.path.name} (input '{graph.input.name}' "
                  f"{graph.input.layout.upper()} {'RGB' if convention.rgb else 'BGR'})",
        "outputs": json.dumps(describe_outputs(graph.classes, topk, (h, w), methods, target_class)),
    }


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "livecam"
    model.producer_version = __version__
