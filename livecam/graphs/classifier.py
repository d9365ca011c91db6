"""A classifier graph livecam did not export, read with ``onnx``: its input, its logits, its head, its maps.

Third-party graphs come from ``torch.onnx.export`` (``GlobalAveragePool ->
Flatten -> Gemm``, or ``ReduceMean -> Reshape -> Gemm`` from the dynamo
exporter), timm, tf2onnx and Keras (NHWC: a ``Transpose``, or a ``ReduceMean``
over axes 1 and 2, and ``MatMul`` + ``Add``), or a vendor. What the explanation
needs is found by the shapes, not by one pattern:

- the input: one 4-D float tensor with 3 channels first (NCHW) or last (NHWC);
- the logits: the one (N, classes) output (the input of a final ``Softmax``,
  when the graph ends in one);
- the head: the logits are ``Gemm`` or ``MatMul`` (+ ``Add``) of a weight held in
  the graph, applied to the flattened mean over H and W of a 4-D tensor. Then the
  gradient of a class score has a closed form (the class's weight row over h w
  at every pixel: Selvaraju et al. 2017, section 3.1) and the CAM family runs in
  the graph; the tensor pooled is the feature map;
- otherwise, the last 4-D tensor the logits depend on, for Eigen-CAM.

Graphs that are not such classifiers are refused with one line
(:class:`livecam.errors.GraphError`, exit 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from livecam.errors import GraphError, option

NCHW, NHWC = "nchw", "nhwc"
PASS_THROUGH = {"Identity", "Dropout", "Cast"}  # nodes between the pooling and the Linear layer that change nothing
FLATTEN = {"Flatten", "Reshape", "Squeeze"}
FLOAT_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16"}


@dataclass(frozen=True)
class GraphInput:
    """The graph's image input: its name, layout, element type, and fixed sizes (None where dynamic)."""

    name: str
    layout: str  # NCHW or NHWC
    elem_type: int  # TensorProto.FLOAT or FLOAT16
    batch: int | None  # a fixed batch size, or None
    size: tuple[int, int] | None  # fixed (height, width), or None


@dataclass(frozen=True)
class Head:
    """How the logits are made from the feature map, when it is global average pooling and one Linear layer."""

    feature: str  # the 4-D tensor pooled
    layout: str  # NCHW or NHWC: the axes the pooling averages
    weight: np.ndarray  # (classes, channels) float32, alpha included: logit_c = weight[c] . mean(feature) + b_c
    chain: str  # the head's operators, e.g. "GlobalAveragePool -> Flatten -> Gemm"


@dataclass(frozen=True)
class Classifier:
    """What livecam found in a third-party classifier graph."""

    path: Path
    model: onnx.ModelProto  # shapes inferred
    input: GraphInput
    logits: str  # the tensor of (N, classes) scores before any softmax
    classes: int
    head: Head | None  # None: not global average pooling and one Linear layer
    other_head: str  # when head is None: what the head is, for messages
    softmax_output: bool  # the graph's output is the softmax of ``logits``


def load(path: Path) -> onnx.ModelProto:
    """The graph at ``path`` with its external data; a damaged file or missing data is one line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GraphError(f"{path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError, among others
        raise GraphError(f"{path} is not an ONNX file onnx can read ({type(exc).__name__}); is it damaged, or "
                         "cut short?") from None
    if not model.graph.node:
        raise GraphError(f"{path} is not an ONNX graph (it holds no nodes); is it damaged?")
    missing = sorted({entry.value for tensor in external_tensors(model) for entry in tensor.external_data
                      if entry.key == "location" and not (path.parent / entry.value).is_file()})
    if missing:
        raise GraphError(f"{path}'s weights are in {', '.join(missing)}, which is missing from {path.parent}; "
                         "keep the data file beside the graph")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # noqa: BLE001
        raise GraphError(f"{path}'s external data could not be read ({type(exc).__name__}: {exc})") from None
    return model


def external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            yield tensor


def tensor_shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Every tensor's shape that the graph or shape inference knows: ints, or names where dynamic."""
    shapes: dict[str, list[int | str]] = {}
    graph = model.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in info.type.tensor_type.shape.dim]
    for tensor in graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes


def constant_value(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of ``name`` when the graph holds it: an initializer or a ``Constant`` node's output."""
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
    return None


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {output: node for node in model.graph.node for output in node.output}


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs: opsets before 9 list the initializers among them."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    return [info for info in model.graph.input if info.name not in initializers]


def read_input(path: Path, model: onnx.ModelProto) -> GraphInput:
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        raise GraphError(f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); livecam explains "
                         "classifiers that take one image batch")
    info = inputs[0]
    shape = tensor_shapes(model).get(info.name, [])
    elem = info.type.tensor_type.elem_type
    if elem not in FLOAT_TYPES:
        raise GraphError(f"{path}'s input '{info.name}' holds {TensorProto.DataType.Name(elem).lower()} values; "
                         "livecam feeds float32 or float16 images")
    if len(shape) != 4 or (shape[1] != 3 and shape[3] != 3):
        raise GraphError(f"{path}'s input '{info.name}' is {_shape_text(shape)}, not an image batch "
                         "(N, 3, H, W) or (N, H, W, 3)")
    layout = NCHW if shape[1] == 3 else NHWC
    h, w = (shape[2], shape[3]) if layout == NCHW else (shape[1], shape[2])
    size = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return GraphInput(info.name, layout, elem, batch, size)


def _shape_text(shape: list[int | str] | None) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")" if shape else "of unknown shape"


def with_input_size(model: onnx.ModelProto, graph_input: GraphInput, size: tuple[int, int]) -> onnx.ModelProto:
    """A copy whose input has the spatial size livecam will feed, and shapes inferred through the graph."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    dims = next(i for i in copy.graph.input if i.name == graph_input.name).type.tensor_type.shape.dim
    axes = (2, 3) if graph_input.layout == NCHW else (1, 2)
    for axis, value in zip(axes, size, strict=True):
        dims[axis].Clear()
        dims[axis].dim_value = value
    try:
        return onnx.shape_inference.infer_shapes(copy, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises its own InferenceError, among others
        raise GraphError(f"the graph does not take {size[1]}x{size[0]} images ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); pass the size it "
                         f"takes with {option('input_size')} WxH") from None


def find_logits(path: Path, model: onnx.ModelProto) -> tuple[str, bool]:
    """The (N, classes) output, and whether it is a softmax (then the logits are the softmax's input)."""
    shapes = tensor_shapes(model)
    outputs = [(o.name, shapes.get(o.name)) for o in model.graph.output]
    two_d = [(name, shape) for name, shape in outputs if shape is not None and len(shape) == 2]
    if len(outputs) > 1 and len(two_d) != 1:
        listed = ", ".join(f"'{name}' {_shape_text(shape)}" for name, shape in outputs)
        raise GraphError(f"{path} has {len(outputs)} outputs ({listed}), and livecam cannot tell which are the "
                         "logits; it explains classifiers with one (N, classes) output")
    if not two_d:
        name, shape = outputs[0]
        raise GraphError(f"{path}'s output '{name}' is {_shape_text(shape)}, not (N, classes): livecam explains "
                         "classifiers")
    name, shape = two_d[0]
    if isinstance(shape[1], int) and shape[1] < 2:
        raise GraphError(f"{path}'s output '{name}' has {shape[1]} class; a classifier has two or more")
    node = producers(model).get(name)
    if node is not None and node.op_type == "Softmax":
        return node.input[0], True
    return name, False


def _skip(model: onnx.ModelProto, name: str, made: dict[str, onnx.NodeProto], ops: set[str]) -> str:
    while name in made and made[name].op_type in ops:
        name = made[name].input[0]
    return name


def _linear(model: onnx.ModelProto, logits: str, made: dict[str, onnx.NodeProto]
            ) -> tuple[str, np.ndarray, list[str]] | None:
    """(the Linear layer's input, its weight (classes, channels), the ops) when the logits are one."""
    node = made.get(logits)
    if node is None:
        return None
    ops: list[str] = []
    if node.op_type == "Add":  # MatMul + Add: the bias is one of the two inputs
        matmul = next((made[i] for i in node.input if i in made and made[i].op_type == "MatMul"), None)
        if matmul is None:
            return None
        ops, node = ["MatMul", "Add"], matmul
    if node.op_type == "Gemm":
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = constant_value(model, node.input[1])
        if weight is None or attributes.get("transA", 0) or weight.ndim != 2:
            return None
        weight = weight if attributes.get("transB", 0) else weight.T
        return node.input[0], float(attributes.get("alpha", 1.0)) * weight.astype(np.float32), ["Gemm"]
    if node.op_type == "MatMul":
        weight = constant_value(model, node.input[1])
        if weight is None or weight.ndim != 2:
            return None
        return node.input[0], weight.T.astype(np.float32), ops or ["MatMul"]
    return None


def _pooling(model: onnx.ModelProto, name: str, made: dict[str, onnx.NodeProto]) -> tuple[str, str, str] | None:
    """(the tensor averaged, its layout, the op) when ``name`` is its mean over H and W."""
    node = made.get(name)
    if node is None:
        return None
    if node.op_type == "GlobalAveragePool":
        return node.input[0], NCHW, "GlobalAveragePool"
    if node.op_type == "ReduceMean":
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        axes = attributes.get("axes")
        if axes is None and len(node.input) > 1:
            value = constant_value(model, node.input[1])
            axes = None if value is None else value.tolist()
        rank = len(tensor_shapes(model).get(node.input[0]) or [])
        if axes is None or rank != 4:
            return None
        axes = sorted(int(a) % 4 for a in axes)
        layout = {(2, 3): NCHW, (1, 2): NHWC}.get((axes[0], axes[1])) if len(axes) == 2 else None
        return (node.input[0], layout, "ReduceMean") if layout else None
    return None


def _chain_back(model: onnx.ModelProto, name: str, made: dict[str, onnx.NodeProto], limit: int = 8) -> str:
    """The operators that make ``name``, back to the last 4-D tensor (or ``limit`` of them), as 'A -> B'."""
    shapes = tensor_shapes(model)
    ops: list[str] = []
    while name in made and len(ops) < limit:
        node = made[name]
        ops.insert(0, node.op_type)
        name = node.input[0]
        if len(shapes.get(name) or []) == 4 and node.op_type in ("ReduceMean", "GlobalAveragePool"):
            break
    return " -> ".join(ops) or "the input"


def _before_transpose(feature: str, layout: str, made: dict[str, onnx.NodeProto]) -> tuple[str, str]:
    """The map as the network made it, when the head pools a transpose of it (tf2onnx: NCHW -> NHWC, then the
    mean over axes 1 and 2): the same map in the other layout, named as the convolutions wrote it."""
    node = made.get(feature)
    if node is None or node.op_type != "Transpose":
        return feature, layout
    perm = next((list(onnx.helper.get_attribute_value(a)) for a in node.attribute if a.name == "perm"), None)
    if layout == NHWC and perm == [0, 2, 3, 1]:
        return node.input[0], NCHW
    if layout == NCHW and perm == [0, 3, 1, 2]:
        return node.input[0], NHWC
    return feature, layout


def find_head(model: onnx.ModelProto, logits: str) -> Head | str:
    """The GAP -> Linear head that makes ``logits``, or why there is none (what the head is instead)."""
    made = producers(model)
    linear = _linear(model, logits, made)
    if linear is None:
        node = made.get(logits)
        return f"a head ending in {node.op_type if node else 'the input'}, not Gemm or MatMul with a weight"
    pooled_in, weight, linear_ops = linear
    flat = _skip(model, pooled_in, made, PASS_THROUGH)
    flatten_ops = []
    if flat in made and made[flat].op_type in FLATTEN:
        flatten_ops, flat = [made[flat].op_type], made[flat].input[0]
    flat = _skip(model, flat, made, PASS_THROUGH)
    pooling = _pooling(model, flat, made)
    chain = " -> ".join([*flatten_ops, *linear_ops])
    if pooling is None:
        return f"{_chain_back(model, flat, made)} -> {chain}, not global average pooling and one Linear layer"
    feature, layout, pool_op = pooling
    feature, layout = _before_transpose(feature, layout, made)
    shape = tensor_shapes(model).get(feature) or []
    channels = shape[1] if layout == NCHW else shape[3] if len(shape) == 4 else None
    if len(shape) != 4 or channels != weight.shape[1]:
        return f"{pool_op} -> {chain} whose weight does not match the pooled channels"
    return Head(feature, layout, weight, " -> ".join([pool_op, chain]))


def last_map(model: onnx.ModelProto, logits: str) -> str | None:
    """The last 4-D tensor with a grid (in the graph's order) that the logits depend on: Eigen-CAM's default."""
    made = producers(model)
    needed, stack = set(), [logits]
    while stack:
        name = stack.pop()
        if name in needed or name not in made:
            continue
        needed.add(name)
        stack.extend(i for i in made[name].input if i)
    shapes = tensor_shapes(model)
    found = None
    for node in model.graph.node:
        for output in node.output:
            if output in needed and _has_grid(shapes.get(output)):
                found = output
    return found


def _has_grid(shape: list[int | str] | None) -> bool:
    """A 4-D tensor with more than one cell, whichever its layout (a pooled (N, C, 1, 1) has none)."""
    if shape is None or len(shape) != 4:
        return False
    return not (shape[2] == 1 and shape[3] == 1) and not (shape[1] == 1 and shape[2] == 1)


def read_classifier(path: Path, size: tuple[int, int] | None = None) -> Classifier:
    """Read and check the classifier at ``path``, its input fixed at ``size`` (height, width) when given."""
    path = Path(path).expanduser()
    model = load(path)
    graph_input = read_input(path, model)
    chosen = size or graph_input.size or (224, 224)
    if graph_input.size is not None and size is not None and size != graph_input.size:
        raise GraphError(f"{path} takes {graph_input.size[1]}x{graph_input.size[0]} images only (its input shape "
                         f"is fixed), not {size[1]}x{size[0]}; leave {option('input_size')} out")
    model = with_input_size(model, graph_input, chosen)
    graph_input = GraphInput(graph_input.name, graph_input.layout, graph_input.elem_type, graph_input.batch, chosen)
    logits, softmax = find_logits(path, model)
    shape = tensor_shapes(model).get(logits) or []
    head = find_head(model, logits)
    classes = head.weight.shape[0] if isinstance(head, Head) else shape[1] if len(shape) == 2 else None
    if not isinstance(classes, int) or classes < 2:
        raise GraphError(f"{path}'s logits '{logits}' have no fixed number of classes ({_shape_text(shape)})")
    if not isinstance(head, Head) and last_map(model, logits) is None:
        raise GraphError(f"{path} has no 4-D tensor (N, C, H, W) before its output, so there is no map to explain; "
                         "livecam explains convolutional and vision-transformer classifiers")
    return Classifier(path, model, graph_input, logits, classes, head if isinstance(head, Head) else None,
                      head if isinstance(head, str) else "", softmax)
