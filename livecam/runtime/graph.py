"""What an exported explainer graph says about itself: the metadata that ``livecam export`` writes.

A graph carries everything needed to use it without PyTorch or livecam's model
code: the class names, how frames become its input (size, mean, std, or raw
uint8 frames), the method and layer, and K, the classes explained per frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from livecam.errors import LivecamError
from livecam.types import Preprocess

_GRAPH_FIELD, _METADATA_FIELD = 7, 14  # ModelProto's graph and metadata_props (onnx.proto)

FORMAT = 1  # the version of the file contract; a reader refuses newer ones
INPUT_TENSOR = "tensor"  # float32 (N, 3, H, W), normalized RGB
INPUT_FRAMES = "frames"  # uint8 (N, H, W, 3) BGR frames of any size
OUTPUTS = ("logits", "classes", "scores", "cams")


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

    @classmethod
    def from_metadata(cls, path: Path, meta: dict[str, str]) -> GraphInfo:
        """Parse ``meta`` (ONNX Runtime's ``custom_metadata_map``); a file livecam did not write is refused."""
        if "livecam_format" not in meta:
            raise LivecamError(f"{path} has no livecam metadata, so livecam cannot tell what its outputs mean; "
                               "make one with 'livecam export --output FILE.onnx'")
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
            )
            if info.input not in (INPUT_TENSOR, INPUT_FRAMES) or info.topk < 1 or len(info.preprocess.mean) != 3:
                raise ValueError(f"input '{info.input}', topk {info.topk}")
            if info.target_class is not None and not 0 <= info.target_class < len(info.class_names):
                raise ValueError(f"class {info.target_class} of {len(info.class_names)}")
            return info
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise LivecamError(f"{path}'s livecam metadata is damaged ({type(exc).__name__}: {exc}); "
                               "export the model again with 'livecam export'") from None

    @classmethod
    def read(cls, path: Path) -> GraphInfo:
        """The metadata of the graph file ``path``, read without loading the graph (see :func:`read_metadata`)."""
        return cls.from_metadata(path, read_metadata(path))

    def describe_class(self) -> str:
        if self.target_class is not None:
            return f"class '{self.class_names[self.target_class]}'"
        return "the top class" if self.topk == 1 else f"the top {self.topk} classes"


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
        raise LivecamError(f"{path} is not an ONNX file livecam can read ({type(exc).__name__}: {exc}); "
                           "make one with 'livecam export --output FILE.onnx'") from None
    return meta
