"""The nodes livecam adds to a third-party graph, written for that graph's opset, run on ONNX Runtime."""

from __future__ import annotations

import numpy as np

import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from livecam.graphs.builder import Builder, float_output


def _run(opset: int, build) -> np.ndarray:
    graph = helper.make_graph([], "g", [float_output("a", [2, 3, 4])], [])
    b = Builder(graph, opset)
    out = build(b, "a")
    graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.0
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"a": a})[0]


@pytest.mark.parametrize("opset", [11, 13, 17, 18, 21])
def test_axes_follow_the_opset(opset: int) -> None:
    """Reduce*, Unsqueeze and Squeeze take axes as an attribute or an input, as the graph's opset wants."""
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.0
    for op, ref in (("ReduceSum", a.sum(axis=2, keepdims=True)), ("ReduceMean", a.mean(axis=(1, 2), keepdims=True)),
                    ("ReduceMax", a.max(axis=1, keepdims=True)), ("ReduceMin", a.min(axis=2, keepdims=True))):
        axes = {"ReduceSum": [2], "ReduceMean": [1, 2], "ReduceMax": [1], "ReduceMin": [2]}[op]
        np.testing.assert_allclose(_run(opset, lambda b, x, op=op, axes=axes: b.reduce(op, x, axes)), ref, rtol=1e-6)
    got = _run(opset, lambda b, x: b.squeeze(b.unsqueeze(b.reduce("ReduceSum", x, [2], keepdims=False), [0]), [0]))
    np.testing.assert_allclose(got, a.sum(axis=2))


def test_names_are_under_livecam() -> None:
    graph = helper.make_graph([], "g", [float_output("a", [2, 3, 4])], [])
    b = Builder(graph, 17)
    b.safe_divide("a", b.reduce("ReduceSum", "a", [2]))
    assert graph.node and all(n.name.startswith("livecam/") for n in graph.node)
    assert all(t.name.startswith("livecam/") for t in graph.initializer)


def test_safe_divide_is_zero_where_the_denominator_is() -> None:
    got = _run(13, lambda b, x: b.safe_divide(b.scalar(1.0), x))
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.0
    expected = np.where(a != 0, 1.0 / np.where(a != 0, a, 1.0), 0.0)
    assert np.isfinite(got).all() and got[a == 0].tolist() == [0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
