"""The model part of an explainer graph in int8 (ONNX Runtime's static quantization), and how faithful it stays.

``livecam export --precision int8 --calibrate SOURCE`` hands the fp32 explainer
graph and frames read from SOURCE to :func:`quantize_graph`: QDQ format (what
ONNX Runtime's CPU kernels fuse into integer operators), per-channel int8
weights, activations calibrated on those frames. The explanation itself (the
nodes named under :data:`EXPLANATION_PREFIX`: the softmax, top-k, the class
weights and the map arithmetic) stays float32: a map min-max normalized from
int8 steps would show the steps, and the classes must come from the logits
as the model computed them.

ONNX Runtime's quantizer excludes nodes by name but still rewires every
consumer of a tensor it quantizes to the dequantized copy, the excluded
nodes included: the map would read the head's weights back from int8 and
its MatMul would be fused into an integer one. So after quantizing, each
explanation node gets back the inputs it had in the fp32 graph (and the fp32
initializers they name). Pre-processing (``quant_pre_process``: shape
inference and ONNX Runtime's basic graph optimizations, which fold a
BatchNormalization into its Conv before the pair is quantized) runs first;
where it changes an explanation node, the graph is quantized unoptimized.

The calibration method and frame count were chosen by measurement on
EfficientNet-Lite0 (benchmarks/results/int8-calibration-epyc-2core.md), and
:func:`fidelity` measures what a given graph gives on frames held out from
calibration; the CLI writes that into the graph's metadata.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from livecam.errors import LivecamError, option
from livecam.stability import map_correlations

log = logging.getLogger(__name__)

EXPLANATION_PREFIX = "livecam/"  # nodes whose name starts with it are the explanation part: never quantized
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION = "minmax"  # see benchmarks/results/int8-calibration-epyc-2core.md
DEFAULT_CALIBRATION_FRAMES = 32
DEFAULT_FP32_CONVS = 8  # the graph's first Convs stay float32: the layers int8 hurts most (measured, same file)
CLASSES, CAMS = "classes", "cams"


@dataclass(frozen=True)
class Recipe:
    """How ONNX Runtime quantizes: the calibration method and the settings measured with it.

    ``reduce_range`` keeps weights to 7 bits: x86 CPUs without VNNI (AVX2) multiply uint8 by int8 into
    saturating 16-bit sums, which full-range per-channel weights overflow (ONNX Runtime's own advice for them).
    ``extra`` goes to ``quantize_static``'s ``extra_options`` as it is.
    """

    method: str = DEFAULT_CALIBRATION
    symmetric_activations: bool = False
    reduce_range: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fidelity:
    """What the int8 graph gives against the fp32 one on frames held out from calibration."""

    frames: int  # held-out frames compared
    agreement: float  # share of them with the same top-1 class as fp32 (0..1)
    median_correlation: float  # Pearson correlation of the first map (cams[:, 0]) with fp32's, median over frames
    worst_correlation: float

    def describe(self) -> str:
        """One line: "top-1 agrees on 98% of 40 held-out frames; map correlation median 0.996, worst 0.97"."""
        return (f"top-1 agrees on {self.agreement:.0%} of {self.frames} held-out frames; map correlation median "
                f"{self.median_correlation:.3f}, worst {self.worst_correlation:.2f}")

    def as_metadata(self) -> dict[str, str]:
        """String entries for the graph's ``metadata_props``."""
        return {"int8_frames": str(self.frames), "int8_agreement": f"{self.agreement:.4f}",
                "int8_median_correlation": f"{self.median_correlation:.4f}",
                "int8_worst_correlation": f"{self.worst_correlation:.4f}"}


def quantize_graph(source: Path, target: Path, calibration: Sequence[np.ndarray], *, input_name: str = "x",
                   method: str = DEFAULT_CALIBRATION, keep_fp32: Sequence[str] = (),
                   fp32_convs: int = DEFAULT_FP32_CONVS) -> None:
    """Write ``source``'s model part quantized to int8 (QDQ, per-channel weights) to ``target``.

    Args:
        source: an fp32 ONNX explainer graph (one float32 input ``input_name``; outputs logits, classes, scores,
            cams).
        target: where the int8 graph goes: written to a hidden partial file beside it and replaced into place, so
            that a failure leaves no half-written file. Its ``metadata_props`` are the source's.
        calibration: input batches for the graph (each (n, 3, H, W) float32, already preprocessed).
        input_name: the graph's input.
        method: one of :data:`CALIBRATION_METHODS`.
        keep_fp32: names of model nodes to leave in float32 (every explanation node is left anyway).
        fp32_convs: how many of the graph's first Conv nodes (in the graph's order) to leave in float32 as well.
    """
    kept = [*first_convs(onnx.load(str(source), load_external_data=False), fp32_convs), *keep_fp32]
    quantize_model(source, target, calibration, Recipe(method=method), input_name=input_name, keep_fp32=kept)


def first_convs(model: onnx.ModelProto, count: int) -> list[str]:
    """The names of the first ``count`` Conv nodes of ``model`` (ONNX keeps nodes in topological order)."""
    return [node.name for node in model.graph.node if node.op_type == "Conv"][:max(count, 0)]


def quantize_model(source: Path, target: Path, calibration: Sequence[np.ndarray], recipe: Recipe, *,
                   input_name: str = "x", keep_fp32: Sequence[str] = ()) -> None:
    """:func:`quantize_graph` with every setting of ``recipe`` (the benchmark measures them)."""
    check_method(recipe.method)
    batches = check_batches(calibration, f"no frames to calibrate the int8 graph on: give {option('calibrate')} a "
                                         "source with frames")
    fp32 = onnx.load(str(source))
    names = {node.name for node in fp32.graph.node}
    unknown = [name for name in keep_fp32 if name not in names]
    if unknown:
        raise LivecamError(f"the graph has no node named {', '.join(map(repr, unknown))}: the nodes to keep in "
                           "float32 are named as in the fp32 graph")
    check_input(fp32, input_name, batches)
    explanation = explanation_nodes(fp32)
    with tempfile.TemporaryDirectory(prefix="livecam-int8-") as folder:
        prepared = prepare(source, Path(folder), explanation)
        quantized = Path(folder) / "int8.onnx"
        _quantize_static(prepared, quantized, batches, recipe, input_name, [*explanation, *keep_fp32])
        model = onnx.load(str(quantized))
    restore_explanation(model, fp32)
    float_outputs(model)
    float_logits(model)
    del model.metadata_props[:]
    model.metadata_props.extend(fp32.metadata_props)
    write_atomically(model, target)


def check_method(method: str) -> None:
    if method not in CALIBRATION_METHODS:
        raise LivecamError(f"unknown calibration method '{method}': {option('calibration')} takes one of "
                           f"{', '.join(CALIBRATION_METHODS)}")


def check_batches(batches: Sequence[np.ndarray], empty: str) -> list[np.ndarray]:
    """The non-empty batches of ``batches`` as float32; none at all: LivecamError(``empty``)."""
    arrays = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
    arrays = [b for b in arrays if len(b)]
    if not arrays:
        raise LivecamError(empty)
    return arrays


def check_input(model: onnx.ModelProto, input_name: str, batches: Sequence[np.ndarray]) -> None:
    """Each batch fits the graph's input ``input_name`` (its rank and fixed dimensions)."""
    inputs = {i.name: i for i in model.graph.input}
    if input_name not in inputs:
        raise LivecamError(f"the graph has no input '{input_name}'; its inputs: {', '.join(inputs) or 'none'}")
    dims = inputs[input_name].type.tensor_type.shape.dim
    expected = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    for batch in batches:
        if batch.ndim != len(expected) or any(isinstance(e, int) and e != b
                                                  for e, b in zip(expected, batch.shape, strict=True)):
            shown = "(" + ", ".join(map(str, expected)) + ")"
            raise LivecamError(f"a calibration batch of shape {tuple(batch.shape)} does not fit the graph's input "
                               f"'{input_name}' {shown}: preprocess the frames to the graph's size")


def explanation_nodes(model: onnx.ModelProto) -> list[str]:
    return [node.name for node in model.graph.node if node.name.startswith(EXPLANATION_PREFIX)]


def _signature(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, tuple[str, list[str], list[str]]]:
    wanted = set(names)
    return {n.name: (n.op_type, list(n.input), list(n.output)) for n in model.graph.node if n.name in wanted}


PREPARATIONS: tuple[dict[str, bool], ...] = (
    {}, {"skip_symbolic_shape": True},  # symbolic shape inference fails on some graphs that ONNX's own takes
    {"skip_optimization": True}, {"skip_optimization": True, "skip_symbolic_shape": True})


def prepare(source: Path, folder: Path, explanation: Sequence[str]) -> Path:
    """``quant_pre_process``'s copy of ``source``: the first of :data:`PREPARATIONS` that it completes and that
    leaves every node of ``explanation`` as it was; ``source`` itself where none does."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    before = _signature(onnx.load(str(source)), explanation)
    for i, settings in enumerate(PREPARATIONS):
        prepared = folder / f"prepared-{i}.onnx"
        try:
            quant_pre_process(str(source), str(prepared), **settings)
        except Exception as exc:  # noqa: BLE001 - the tools fail in their own ways on graphs they do not take
            log.debug("quant_pre_process(%s) failed on %s: %s", settings, source, exc)
            continue
        if _signature(onnx.load(str(prepared)), explanation) == before:
            return prepared
        log.debug("quant_pre_process(%s) changed the explanation nodes of %s", settings, source)
    return source


class _Batches:
    """The calibration frames, one batch per call (ONNX Runtime's ``CalibrationDataReader`` protocol)."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _quantize_static(source: Path, target: Path, batches: Sequence[np.ndarray], recipe: Recipe, input_name: str,
                     exclude: Sequence[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    extra = {"ActivationSymmetric": recipe.symmetric_activations, **recipe.extra}
    quantize_static(str(source), str(target), _Batches(input_name, batches), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=recipe.reduce_range,
                    activation_type=QuantType.QInt8 if recipe.symmetric_activations else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
                    calibrate_method=methods[recipe.method], extra_options=extra)


def restore_explanation(model: onnx.ModelProto, fp32: onnx.ModelProto) -> None:
    """Give each explanation node of ``model`` back the fp32 initializers it read in ``fp32`` (the quantizer rewired
    it to their dequantized int8 copies) and put those initializers back where the quantizer replaced them.

    Activations stay as the quantizer wired them: the explanation reads the model's tensors as the int8 model
    makes them (dequantized). The fp32 tensor in front of a QuantizeLinear is not always the model's: the
    quantizer folds a Relu or Clip into the QuantizeLinear's range and drops it.
    """
    graph = model.graph
    sources = {i.name: i for i in fp32.graph.initializer}
    originals = {node.name: list(node.input) for node in fp32.graph.node if node.name.startswith(EXPLANATION_PREFIX)}
    present = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.name not in originals:
            continue
        for i, (now, then) in enumerate(zip(node.input, originals[node.name], strict=True)):
            if now != then and then in sources:
                node.input[i] = then
                if then not in present:
                    graph.initializer.append(sources[then])
                    present.add(then)


def float_outputs(model: onnx.ModelProto) -> None:
    """Drop the QuantizeLinear -> DequantizeLinear pair the quantizer put on a graph output (the logits): the
    outputs, and the classes the explanation picks from them, keep the model's last layer's float result
    (ONNX Runtime runs the layer on int8 inputs with a float output)."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for output in graph.output:
        dq = producer.get(output.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if dq is None or q is None or q.op_type != "QuantizeLinear" or len(readers.get(q.output[0], [])) != 1:
            continue
        inner = q.input[0]
        if inner not in producer or len(readers.get(inner, [])) != 1:
            continue
        producer[inner].output[:] = [output.name if o == inner else o for o in producer[inner].output]
        graph.node.remove(q)
        graph.node.remove(dq)
        used = {name for node in graph.node for name in node.input}
        for initializer in [i for i in graph.initializer if i.name in (*q.input[1:], *dq.input[1:])]:
            if initializer.name not in used:
                graph.initializer.remove(initializer)


def float_logits(model: onnx.ModelProto) -> None:
    """The explanation reads the logits (its ``livecam/`` Cast to the ``logits`` output) from the head's float
    result, not from the 8-bit copy the quantizer makes for it: an 8-bit logit ties classes that fp32 ranks apart."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    cast = producer.get("logits")
    if cast is None or not cast.name.startswith(EXPLANATION_PREFIX):
        return
    dq = producer.get(cast.input[0])
    if dq is None or dq.op_type != "DequantizeLinear":
        return
    q = producer.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in producer:
        return
    if producer[q.input[0]].op_type not in ("Gemm", "MatMul", "Add"):
        return
    cast.input[0] = q.input[0]
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for node in (dq, q):
        if not any(out in used for out in node.output):
            graph.node.remove(node)
            used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    for initializer in [i for i in graph.initializer if i.name in (*q.input[1:], *dq.input[1:])]:
        if initializer.name not in used:
            graph.initializer.remove(initializer)


def write_atomically(model: onnx.ModelProto, target: Path) -> None:
    """``model`` to ``target`` through a hidden partial file beside it: never a half-written graph."""
    target = Path(target)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        onnx.save(model, str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def fidelity(fp32: Path, int8: Path, inputs: Sequence[np.ndarray], *, input_name: str = "x") -> Fidelity:
    """Both graphs run on the CPU on ``inputs`` (held-out batches); compares outputs 'classes'[:, 0] and
    'cams'[:, 0]."""
    batches = check_batches(inputs, "no held-out frames to compare the int8 graph with the fp32 one on: pass at "
                                    "least one batch")
    runs = []
    for path in (fp32, int8):
        session = _session(path)
        outputs = [session.run([CLASSES, CAMS], {input_name: b}) for b in batches]
        runs.append((np.concatenate([o[0][:, 0] for o in outputs]), np.concatenate([o[1][:, 0] for o in outputs])))
    (classes, cams), (classes8, cams8) = runs
    r = map_correlations(cams, cams8)
    return Fidelity(frames=len(classes), agreement=float(np.mean(classes == classes8)),
                    median_correlation=float(np.median(r)), worst_correlation=float(np.min(r)))

