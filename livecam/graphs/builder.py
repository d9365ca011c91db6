"""Nodes added to a graph someone else made, written for that graph's opset.

A third-party graph keeps its own opset (11 to the newest): converting it would
risk the user's own operators. The few operators livecam adds whose signature
changed over the opsets are written here for the one the graph declares:
``Unsqueeze``, ``Squeeze`` and ``ReduceSum`` take their axes as an input from
opset 13 and as an attribute before; ``ReduceMean``, ``ReduceMax``,
``ReduceMin`` likewise from opset 18. Every other operator used (``MatMul``,
``TopK``, ``GatherElements``, ``Where``, ``Softmax`` over the last axis, ...) means
the same from opset 11 on.

Every node and constant is named under ``livecam/``, so that the explanation
part of a graph is told apart from the model part (the int8 quantizer leaves it
in float32), and no name collides with the user's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREFIX = "livecam/"
MIN_OPSET = 11
_AXES_AS_INPUT = {"Unsqueeze": 13, "Squeeze": 13, "ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18,
                  "ReduceMin": 18, "ReduceL2": 18}


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default ONNX domain the graph imports."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


class Builder:
    """Appends nodes and constants to ``graph`` for ``opset``; each call returns its output's name.

    Example::

        >>> b = Builder(model.graph, 13)
        >>> total = b.reduce("ReduceSum", "features", [2, 3])
        >>> b.op("Relu", total, name="relu")
    """

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{PREFIX}{hint}_{self._count}"

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """A constant tensor (an initializer) holding ``value``."""
        array = np.asarray(value, dtype=dtype)
        name = self._name(hint)
        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, output: str | None = None,
           **attributes: Any) -> str:
        """One node; its first output (``output``, or a fresh name). ``outputs`` > 1: see :meth:`op_many`."""
        return self.op_many(op_type, *inputs, outputs=outputs, name=name, output=output, **attributes)[0]

    def op_many(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None,
                output: str | None = None, **attributes: Any) -> list[str]:
        hint = (name or op_type).lower()
        node_name = self._name(hint)
        names = [output or f"{node_name}:0"] + [f"{node_name}:{i}" for i in range(1, outputs)]
        self.graph.node.append(helper.make_node(op_type, list(inputs), names, name=node_name, **attributes))
        return names

    def _axes(self, op_type: str, x: str, axes: Sequence[int], **attributes: Any) -> str:
        if self.opset >= _AXES_AS_INPUT[op_type]:
            return self.op(op_type, x, self.const(np.array(axes, np.int64), "axes"), **attributes)
        return self.op(op_type, x, axes=list(axes), **attributes)

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool = True) -> str:
        """``ReduceSum``, ``ReduceMean``, ``ReduceMax`` or ``ReduceMin`` over ``axes``."""
        return self._axes(op_type, x, axes, keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self._axes("Unsqueeze", x, axes)

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self._axes("Squeeze", x, axes)

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, np.float32), "scalar")

    def safe_divide(self, num: str, den: str, ok: str | None = None) -> str:
        """num / den where ``ok`` (default: den != 0), else 0: never inf or NaN (as ``livecam.cams.safe_divide``)."""
        zero = self.scalar(0.0)
        if ok is None:
            ok = self.op("Not", self.op("Equal", den, zero))
        safe = self.op("Where", ok, den, self.scalar(1.0))
        return self.op("Where", ok, self.op("Div", num, safe), zero)

    def shape_of(self, x: str, start: int, end: int) -> str:
        """``x``'s dimensions ``start:end`` as an int64 vector (dynamic where they are)."""
        shape = self.op("Shape", x)
        return self.op("Slice", shape, self.const([start], dtype=np.int64), self.const([end], dtype=np.int64))

    def concat(self, *parts: str) -> str:
        return self.op("Concat", *parts, axis=0)


def float_output(name: str, shape: Sequence[int | str | None], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))
