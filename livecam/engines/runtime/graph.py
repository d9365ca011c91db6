"""What an exported explainer graph says about itself: the metadata that ``livecam export`` writes.

A graph carries everything needed to use it without PyTorch or livecam's model
code: the class names, how frames become its input (size, mean, std, or raw
uint8 frames), the method and layer, and K, the classes explained per frame.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from livecam.errors import GraphError, LivecamError, option
from livecam.types import Preprocess

_GRAPH_FIELD, _METADATA_FIELD = 7, 14  # ModelProto's graph and metadata_props (onnx.proto)

FORMAT = 1  # the version of the file contract; a reader refuses newer ones
INPUT_TENSOR = "tensor"  # float32 (N, 3, H, W), normalized RGB
INPUT_FRAMES = "frames"  # uint8 (N, H, W, 3) BGR frames of any size
OUTPUTS = ("logits", "classes", "scores", "cams")


def cams_output(methods: Sequence[str], method: str) -> str:
    """The output that holds ``method``'s maps in a graph of ``methods``: ``cams`` for the first (the graph's
    own), ``cams_<method>`` for each other one."""
    return OUTPUTS[-1] if method == methods[0] else f"{OUTPUTS[-1]}_{method}"


def describe_outputs(classes: int, k: int, grid: tuple[int, int], methods: str | Sequence[str],
                     target_class: int | None) -> dict[str, str]:
    """The ``outputs`` metadata entry: what each output of an explainer graph holds, in words."""
    h, w = grid
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    explained = "the fixed class" if target_class is not None else f"the {k} most probable classes, best first"
    described = {
        "logits": f"float32 (N, {classes}): the model's logits",
        "classes": f"int64 (N, {k}): {explained}",
        "scores": f"float32 (N, {k}): the softmax probability of each of those classes",
    }
    for method in methods:
        described[cams_output(methods, method)] = (
            f"float32 (N, {k}, {h}, {w}) in [0, 1]: the {method} map of each of those classes at the target "
            "layer's resolution, min-max normalized (a flat map is all zeros)")
    return described


@dataclass(frozen=True)
class GraphInfo:
    """The metadata of a livecam explainer graph, parsed and checked."""

    path: Path
    model: str
    weights: str
    layer: str
    method: str
    topk: int  # K: explained classes per frame
    target_class: int | None  # the fixed class, when the graph explains one class in every frame
    class_names: tuple[str, ...]
    preprocess: Preprocess
    input: str  # INPUT_TENSOR or INPUT_FRAMES
    precision: str
    feature_size: tuple[int, int]
    head: str
    livecam_version: str
    layout: str = ""  # the layer's output as the graph reads it: 'NCHW 7x7', 'tokens 14x14 + 1 prefix'
    assumed: str = ""  # a third-party graph: what livecam guessed of its input ('ImageNet mean and std; ...')
    source: str = ""  # a third-party graph: the file explained, its input's layout and channel order
    methods: tuple[str, ...] = ()  # every method the file holds, its own (``method``) first; () as (method,)

    @property
    def all_methods(self) -> tuple[str, ...]:
        """The methods whose maps the file holds, its own first (a file of one method: that one)."""
        return self.methods or (self.method,)

    def output_for(self, method: str) -> str:
        """The output that holds ``method``'s maps (see :func:`cams_output`)."""
        return cams_output(self.all_methods, method)

    @classmethod
    def from_metadata(cls, path: Path, meta: dict[str, str]) -> GraphInfo:
        """Parse ``meta`` (ONNX Runtime's ``custom_metadata_map``); a file livecam did not write is refused."""
        if "livecam_format" not in meta:
            raise GraphError(f"{path} has no livecam metadata, so livecam cannot tell what its outputs mean; "
                               f"make one with 'livecam export {option('output')} FILE.onnx'")
        try:
            version = int(meta["livecam_format"])
            if version > FORMAT:
                raise LivecamError(f"{path} was written by a newer livecam (file format {version}, this one reads "
                                   f"up to {FORMAT}); upgrade livecam")
            size = tuple(json.loads(meta["input_size"]))
            target = meta.get("class", "")
            info = cls(
                path=Path(path),
                model=meta.get("model", Path(path).stem),
                weights=meta.get("weights", ""),
                layer=meta["layer"],
                method=meta["method"],
                topk=int(meta["topk"]),
                target_class=int(target) if target != "" else None,
                class_names=tuple(json.loads(meta["class_names"])),
                preprocess=Preprocess((int(size[0]), int(size[1])), tuple(json.loads(meta["mean"])),
                                      tuple(json.loads(meta["std"]))),
                input=meta["input"],
                precision=meta.get("precision", "fp32"),
                feature_size=tuple(json.loads(meta.get("feature_size", "[0, 0]"))),
                head=meta.get("head", ""),
                livecam_version=meta.get("livecam_version", ""),
                layout=meta.get("layout", ""),
                assumed=meta.get("assumed", ""),
                source=meta.get("source", ""),
                methods=tuple(json.loads(meta.get("methods", "[]"))),
            )
            if info.methods and (info.methods[0] != info.method or len(set(info.methods)) != len(info.methods)
                                 or not all(isinstance(m, str) and m for m in info.methods)):
                raise ValueError(f"methods {list(info.methods)} with method '{info.method}'")
            if info.input not in (INPUT_TENSOR, INPUT_FRAMES) or info.topk < 1 or len(info.preprocess.mean) != 3:
                raise ValueError(f"input '{info.input}', topk {info.topk}")
            if min(info.preprocess.size) < 1 or len(info.preprocess.std) != 3 or 0 in info.preprocess.std:
                raise ValueError(f"input_size {list(info.preprocess.size)}, std {list(info.preprocess.std)}")
            if not info.class_names:
                raise ValueError("no class names")
            if info.target_class is not None and not 0 <= info.target_class < len(info.class_names):
                raise ValueError(f"class {info.target_class} of {len(info.class_names)}")
            return info
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise GraphError(f"{path}'s livecam metadata is damaged ({type(exc).__name__}: {exc}); "
                             "export the model again with 'livecam export'") from None

    def check_graph(self, input_shape: Sequence[object], output_shapes: Mapping[str, Sequence[object]],
                    methods: Sequence[str] | None = None) -> None:
        """Refuse a file whose metadata does not describe its graph (edited or damaged), before it runs; a session
        opened for some of its ``methods`` (default: all) has only their maps."""
        wanted = [*OUTPUTS[:3], *(self.output_for(method) for method in (methods or self.all_methods))]
        missing = [name for name in wanted if name not in output_shapes]
        if missing:
            raise GraphError(f"{self.path} lacks the outputs {', '.join(missing)} of a livecam explainer graph; "
                             "export it again with 'livecam export'")
        problems = mismatches(self, input_shape, output_shapes)
        if problems:
            raise GraphError(f"{self.path} is damaged: {problems[0]}; export it again with 'livecam export'")

    @classmethod
    def read(cls, path: Path) -> GraphInfo:
        """The metadata of the graph file ``path``, read without loading the graph (see :func:`read_metadata`)."""
        return cls.from_metadata(path, read_metadata(path))

    def describe_class(self) -> str:
        if self.target_class is not None:
            return f"class '{self.class_names[self.target_class]}'"
        return "the top class" if self.topk == 1 else f"the top {self.topk} classes"


def _dim(shape: Sequence[object] | None, axis: int) -> int | None:
    """A fixed size of ``shape`` along ``axis``; None where it varies (a name) or is absent."""
    if shape is None or len(shape) <= axis:
        return None
    value = shape[axis]
    return value if isinstance(value, int) and value > 0 else None


def mismatches(info: GraphInfo, input_shape: Sequence[object], output_shapes: Mapping[str, Sequence[object]]
               ) -> list[str]:
    """Where the metadata and the graph's fixed shapes disagree: the classes, K, the input size, the maps."""
    problems = []
    classes = _dim(output_shapes.get("logits"), 1)
    if classes is not None and classes != len(info.class_names):
        problems.append(f"its metadata names {len(info.class_names)} classes, but its logits have {classes}")
    for name in ("classes", "scores", *(info.output_for(method) for method in info.all_methods)):
        k = _dim(output_shapes.get(name), 1)
        if k is not None and k != info.topk:
            problems.append(f"its metadata says it explains {info.topk} classes per image, but its {name} hold {k}")
    if info.input == INPUT_TENSOR:
        size = (_dim(input_shape, 2), _dim(input_shape, 3))
        if None not in size and size != tuple(info.preprocess.size):
            problems.append(f"its metadata says it takes {info.preprocess.size[0]}x{info.preprocess.size[1]} "
                            f"images, but its input is {size[0]}x{size[1]}")
        channels = _dim(input_shape, 1)
        if channels is not None and channels != 3:
            problems.append(f"its input has {channels} channels, not the 3 of an RGB image")
    maps = (_dim(output_shapes.get("cams"), 2), _dim(output_shapes.get("cams"), 3))
    if None not in maps and tuple(info.feature_size) != (0, 0) and maps != tuple(info.feature_size):
        problems.append(f"its metadata says its maps are {info.feature_size[0]}x{info.feature_size[1]}, but they "
                        f"are {maps[0]}x{maps[1]}")
    return problems


def _varint(file: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = file.read(1)
        if not byte:
            raise EOFError
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7


def _fields(data: bytes) -> dict[int, str]:
    """The string fields of one protobuf message held in ``data`` (field number -> text)."""
    import io

    found: dict[int, str] = {}
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        key = _varint(stream)
        if key & 7 != 2:
            raise ValueError("not a string entry")
        found[key >> 3] = stream.read(_varint(stream)).decode("utf-8")
    return found


def read_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as ONNX Runtime's ``custom_metadata_map`` gives them, in milliseconds.

    Planning (``livecam annotate`` comparing its settings with an earlier run's) wants a graph's method and
    layer without the cost of opening it: importing onnx takes over a second and an ONNX Runtime session a
    few tenths. The file is a protobuf ``ModelProto``; this walks its top-level fields and skips the graph
    (the weights, megabytes) by seeking past it, reading only the small metadata entries. A file that is not
    ONNX is a LivecamError.
    """
    meta: dict[str, str] = {}
    try:
        with Path(path).open("rb") as file:
            size = file.seek(0, 2)
            file.seek(0)
            while file.tell() < size:
                key = _varint(file)
                number, kind = key >> 3, key & 7
                if kind == 0:
                    _varint(file)
                elif kind in (1, 5):
                    file.seek(8 if kind == 1 else 4, 1)
                elif kind == 2:
                    length = _varint(file)
                    if number == _METADATA_FIELD:
                        entry = _fields(file.read(length))
                        meta[entry.get(1, "")] = entry.get(2, "")
                    else:
                        file.seek(length, 1)
                else:
                    raise ValueError(f"wire type {kind}")
                if file.tell() > size:
                    raise EOFError
    except (OSError, EOFError, ValueError) as exc:
        raise GraphError(f"{path} is not an ONNX file livecam can read ({type(exc).__name__}: {exc}); "
                           f"make one with 'livecam export {option('output')} FILE.onnx'") from None
    return meta
