"""The whole explanation in one ONNX graph: frames or a normalized batch in; logits, classes, scores and maps out.

``livecam.export.activation`` exports the model with its target activation as a second
output and leaves the map to PyTorch. Here the map is inside the graph too, so
that ONNX Runtime alone (a C++ program, an edge device, a browser) explains:
no PyTorch, no autograd at run time.

Autograd cannot be exported, so gradients must have a closed form. They do for
a head of global average pooling followed by one Linear layer: with
y^c = sum_k W_ck mean_ij(A^k_ij) + b_c, d y^c / d A^k_ij = W_ck / (h w) at every
pixel (Selvaraju et al. 2017, section 3.1; for such heads Grad-CAM is CAM, Zhou
et al. 2016). livecam's own methods already use that closed form
(:meth:`livecam.cams.Capture.gradients`), so the graph builds the same
:class:`~livecam.cams.Capture` from its forward pass and calls the same
``compute``: the exported maps match the PyTorch path by construction. Eigen-CAM
(Muhammad & Yeasin 2020) needs no gradient and works for any head; its SVD has
no ONNX export and is replaced by the power method
(:func:`livecam.cams.activation.eigen_maps_power`).

Score-CAM (one forward pass per channel) and the guided methods (a backward
pass to the input) cannot live in one graph and are refused, as are gradient
methods on any other head.

The file contract (read by livecam's ONNX Runtime engine and by any other caller):

- one input: ``x`` float32 (N, 3, H, W), RGB normalized with the model's mean and
  std; or, exported with ``from_frames=True``, ``frames`` uint8 (N, H, W, 3) BGR
  frames of any size, which the graph resizes (antialiased bilinear, the whole
  frame, no crop), turns to RGB and normalizes itself. N is dynamic in both;
- four outputs: ``logits`` float32 (N, C); ``classes`` int64 (N, K), the K most
  probable classes best first (or the fixed class); ``scores`` float32 (N, K),
  their softmax probabilities; ``cams`` float32 (N, K, h, w) in [0, 1], at the
  target layer's resolution, min-max normalized per map in float32 whatever the
  model's precision (a flat map is all zeros, never NaN);
- a graph of several methods (``method="gradcam,cam,eigencam"``) has one more
  output per method after the first, ``cams_<method>``, shaped as ``cams``:
  one forward pass, then each method's maps. ONNX Runtime runs every node on
  each call, whichever outputs are fetched (four methods cost 1.17x-1.23x one),
  so livecam's engine opens such a file cut to the method it draws, at the
  cost of one method (benchmarks/results/multi-method-xeon-2core.md);
- metadata (``metadata_props``, all strings) that says what the file is: see
  :func:`metadata`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from livecam import choices
from livecam.cams import METHODS, Capture, CamMethod, normalize_maps
from livecam.cams.activation import eigen_maps_power
from livecam.engines.pytorch.device_step import preprocess_frames
from livecam.choices import suggest
from livecam.engines.runtime.graph import FORMAT, OUTPUTS, cams_output, describe_outputs
from livecam.errors import LivecamError, option
from livecam.zoo import GAP_LINEAR, Head, LoadedModel, ModelInfo, Preprocess, inspect_model
from livecam.zoo.layout import Layout

log = logging.getLogger(__name__)

OPSET = 18
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}
EIGEN = "eigencam"
# the gradient methods and CAM: exportable where the gradient has a closed form (GAP -> Linear heads)
CLOSED_FORM = choices.GAP_LINEAR_EXPORT_METHODS
EXPORTABLE = choices.EXPORT_METHODS
NOT_IN_ONE_GRAPH = {
    "scorecam": "it runs the model once more per channel of the target layer, on the input masked by that "
                "channel, which cannot live in one graph",
    "guided": "it needs a backward pass from the class score to the input pixels, and an ONNX graph holds no "
              "autograd",
    "guidedgradcam": "it needs a backward pass from the class score to the input pixels, and an ONNX graph holds "
                     "no autograd",
}
MAX_SIDE = 16384  # the largest frame side the frames input accepts


def exportable(model: LoadedModel | ModelInfo, method: str, name: str | None = None) -> None:
    """Raise a one-line :class:`LivecamError` unless ``method`` can be exported for this model's head.

    ``model`` is a :class:`LoadedModel` or the :class:`ModelInfo` of a target
    layer (``name`` then names the model in the message).
    """
    info = model.info if isinstance(model, LoadedModel) else model
    label = name or (model.name if isinstance(model, LoadedModel) else "the model")
    if method in NOT_IN_ONE_GRAPH:
        raise LivecamError(
            f"{method} cannot be exported: {NOT_IN_ONE_GRAPH[method]}; export {option('method')} gradcam or cam (for "
            "a head of global average pooling and one Linear layer) or eigencam (any head) instead, or run "
            f"{method} in PyTorch (livecam run)"
        )
    if method not in EXPORTABLE:
        raise LivecamError(
            f"unknown method '{method}'{suggest(method, list(EXPORTABLE))}; the methods that export are "
            f"{', '.join(EXPORTABLE)}"
        )
    head = info.head
    if method in CLOSED_FORM and (head.kind != GAP_LINEAR or head.linear is None):
        raise LivecamError(
            f"{method} can only be exported for a head of global average pooling and one Linear layer; "
            f"{label}'s head after '{info.target_layer}' is {head.chain or 'unknown'}; export {option('method')} "
            "eigencam, which works for any head"
        )


class ExplanationGraph(nn.Module):
    """What is exported: (x or frames) -> (logits, classes, scores, cams, ...), one explanation per (sample, class).

    ``module`` runs in its own precision; everything after its forward pass is
    float32. ``methods`` are livecam's own :class:`CamMethod` objects (None for
    Eigen-CAM, computed by the power method), one output of maps each, all from
    the one forward pass; ``linear`` is the GAP -> Linear head in float32 when
    a method needs it.
    """

    mean: torch.Tensor  # buffers, registered in __init__ when the graph takes frames
    std: torch.Tensor

    def __init__(self, module: nn.Module, layer: str, methods: list[CamMethod | None], linear: nn.Linear | None, k: int,
                 target_class: int | None, dtype: torch.dtype, frames: Preprocess | None,
                 layout: Layout | None = None) -> None:
        super().__init__()
        self.module = module
        self.layout = layout  # the layer's output as the (N, C, h, w) map: tokens and channels-last maps reshaped
        self.linear = linear  # float32; in fp32 the model's own layer (one weight in the file)
        self.methods = methods
        self.k = k
        self.target_class = target_class
        self.dtype = dtype
        self.spec = frames
        if frames is not None:
            self.register_buffer("mean", torch.tensor(frames.mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(frames.std, dtype=torch.float32).view(1, 3, 1, 1))
        self._activation: torch.Tensor | None = None
        module.get_submodule(layer).register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _inputs: tuple[object, ...], output: torch.Tensor) -> torch.Tensor:
        self._activation = output
        return output.clone()  # an in-place operation after the layer must not change the kept activation

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.spec is not None:
            x = preprocess_frames(inputs, self.spec, self.mean, self.std, self.dtype, channels_last=False)
        else:
            x = inputs.to(self.dtype)
        logits = self.module(x).float()
        activation, self._activation = self._activation, None
        if activation is None:
            raise LivecamError(f"the target layer did not run in the forward pass; pick another with {option('layer')}")
        if self.layout is not None:
            activation = self.layout.to_map(activation)
        acts = activation.float()  # the map arithmetic in float32: in fp16 its epsilons underflow
        n, channels, h, w = acts.shape
        if self.target_class is None:
            classes = logits.topk(self.k, dim=1).indices  # (N, K), best first, as the Explainer's top-k
        else:
            classes = torch.full_like(logits[:, :1], self.target_class, dtype=torch.int64)
        scores = torch.softmax(logits, dim=1).gather(1, classes)
        rows = acts[:, None].expand(n, self.k, channels, h, w).reshape(-1, channels, h, w)
        logit_rows = logits[:, None].expand(n, self.k, logits.shape[1]).reshape(-1, logits.shape[1])
        weight = self.linear.weight if self.linear is not None else None
        outputs = [logits, classes, scores]
        for method in self.methods:
            if method is None:
                # Eigen-CAM is class-agnostic: one map per sample, the same for each of its K classes
                outputs.append(normalize_maps(eigen_maps_power(acts))[:, None].expand(n, self.k, h, w))
                continue
            capture = Capture(rows, logit_rows, classes.reshape(-1), weight,
                              contrast=method.contrast(logit_rows, classes.reshape(-1)))
            outputs.append(normalize_maps(method.compute(capture)).reshape(-1, self.k, h, w))
        return tuple(outputs)


def _check_arguments(model: LoadedModel, path: Path, methods: tuple[str, ...], topk: int, target_class: int | None,
                     input_size: tuple[int, int] | None, precision: str) -> tuple[int, int]:
    for method in methods:
        if method not in EXPORTABLE:
            exportable(model, method)  # says why: an unknown method, or one that cannot live in one graph
    if precision not in PRECISIONS:
        raise LivecamError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    classes = model.info.num_classes
    most = min(classes, choices.MAX_TOPK)
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= most:
        raise LivecamError(f"topk must be an integer from 1 to {most} (at most {choices.MAX_TOPK} classes, and the "
                           f"model's {classes}), not {topk!r}")
    if target_class is not None:
        if isinstance(target_class, bool) or not isinstance(target_class, int) or not 0 <= target_class < classes:
            raise LivecamError(f"the class must be an index from 0 to {classes - 1}, not {target_class!r}")
        if topk != 1:
            raise LivecamError(f"a fixed class is one explanation per image: give topk=1, not {topk}, "
                               "or leave the class out to explain the top-K classes")
    size = tuple(model.preprocess.size) if input_size is None else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 4096 for s in size):
        raise LivecamError(f"the input size must be (height, width) with sides from 8 to 4096, not {input_size!r}")
    if path.suffix.lower() != ".onnx":
        raise LivecamError(f"cannot write {path}: an ONNX file name ends in .onnx")
    if not path.parent.is_dir():
        raise LivecamError(f"cannot write {path}: the folder {path.parent} does not exist")
    return size[0], size[1]


def metadata(model: LoadedModel, info: ModelInfo, methods: tuple[str, ...], k: int, target_class: int | None,
             size: tuple[int, int], precision: str, from_frames: bool) -> dict[str, str]:
    """The file's ``metadata_props``: every value a string (lists and objects as JSON). ``method`` is the
    graph's own (its ``cams`` output); ``methods`` lists every method it holds, that one first."""
    from livecam import __version__

    h, w = info.feature_shape[-2:]
    outputs = describe_outputs(info.num_classes, k, (int(h), int(w)), methods, target_class)
    return {
        "livecam_format": str(FORMAT),
        "livecam_version": __version__,
        "model": model.name,
        "weights": model.weights,
        "layer": info.target_layer,
        "method": methods[0],
        "methods": json.dumps(list(methods)),
        "topk": str(k),
        "class": "" if target_class is None else str(target_class),
        "class_names": json.dumps(list(model.class_names)),
        "mean": json.dumps([float(m) for m in model.preprocess.mean]),
        "std": json.dumps([float(s) for s in model.preprocess.std]),
        "input_size": json.dumps(list(size)),
        "input": "frames" if from_frames else "tensor",
        "precision": precision,
        "feature_size": json.dumps([int(h), int(w)]),
        "layout": info.layout.describe(),
        "head": info.head.chain if info.head.kind != GAP_LINEAR else f"global average pooling and one Linear layer: "
                                                                      f"{info.head.chain}",
        "outputs": json.dumps(outputs),
    }


def export_explainer(
    model: LoadedModel,
    path: Path,
    method: str | Sequence[str] = "gradcam",
    layer: str | None = None,
    topk: int = 1,
    target_class: int | None = None,
    input_size: tuple[int, int] | None = None,
    precision: str = "fp32",
    from_frames: bool = False,
) -> Path:
    """Write the model and its ``method`` explanations as one ONNX file, which ONNX Runtime runs without PyTorch.

    The graph gives the logits, the explained classes, their probabilities and their maps, already normalized;
    :class:`~livecam.engines.runtime.engine.RuntimeEngine` runs it. The caller's module is not changed: a copy
    is exported, in eval mode, on the CPU. The file is written beside ``path`` under a hidden name and moved
    into place once complete; an existing file is replaced.

    Args:
        model: the :class:`~livecam.zoo.LoadedModel` to export (its weights, class names and preprocessing).
        path: the ``.onnx`` file to write; its folder must exist.
        method: a method whose explanation fits in one graph (``livecam.export.EXPORTABLE``), or several
            (``"gradcam,cam,eigencam"`` or a sequence): one forward pass, and an output of maps per method,
            ``cams`` for the first and ``cams_<method>`` for each other one.
        layer: the target layer (dotted path); None: the model's own.
        topk: explain each sample's K most probable classes (K maps per sample), 1 to 10.
        target_class: explain this class index for every sample instead (K = 1).
        input_size: (height, width) instead of the model's input size (the maps' size follows).
        precision: the model's weights and arithmetic inside the graph, ``"fp32"`` or ``"fp16"``; the input
            stays float32 (or uint8 frames), the logits come out float32 and the maps are computed in float32.
        from_frames: the input is (N, H, W, 3) uint8 BGR frames of any size instead of a normalized batch.

    Returns:
        ``path``. Bad arguments, and a head that cannot hold the method, are one-line
        :class:`~livecam.errors.LivecamError`.

    Example::

        >>> model = livecam.load_model("efficientnet_lite0")
        >>> livecam.export_explainer(model, Path("lite0.onnx"), method="gradcam", topk=3)
        >>> livecam.RuntimeEngine("lite0.onnx", device="cpu", topk=3, panels=True)
    """
    path = Path(path)
    methods = choices.export_methods(method)
    size = _check_arguments(model, path, methods, topk, target_class, input_size, precision)
    start = time.perf_counter()
    module = copy.deepcopy(model.module).float().cpu().eval().requires_grad_(False)
    info = inspect_model(module, size, layer or model.target_layer)
    for name in methods:
        exportable(info, name, model.name)
    linear = info.head.linear if set(methods) & set(CLOSED_FORM) else None  # the copy's own layer
    dtype = PRECISIONS[precision]
    if linear is not None and dtype != torch.float32:
        linear = copy.deepcopy(linear)  # the head weight for the maps stays float32 ...
    module.to(dtype)  # ... while the model's weights take the export's precision
    computes = [None if name == EIGEN else METHODS[name](Head(GAP_LINEAR, linear=linear)) for name in methods]
    graph = ExplanationGraph(module, info.target_layer, computes, linear, topk, target_class, dtype,
                             model.preprocess if from_frames else None, info.layout).eval()

    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic: tuple[dict[int, object], ...]
    if from_frames:
        example = torch.zeros(2, size[0] + 37, size[1] + 61, 3, dtype=torch.uint8)
        height, width = torch.export.Dim("height", min=2, max=MAX_SIDE), torch.export.Dim("width", min=2, max=MAX_SIDE)
        dynamic, input_name = ({0: batch, 1: height, 2: width},), "frames"
    else:
        example, dynamic, input_name = torch.zeros(2, 3, *size), ({0: batch},), "x"
    props = metadata(model, info, methods, topk, target_class, size, precision, from_frames)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    outputs = [*OUTPUTS[:3], *(cams_output(methods, name) for name in methods)]
    try:
        _export(graph, example, dynamic, input_name, outputs, partial, props)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %s %s (K=%d, %s input, %s) to %s in %.1f s", model.name, ",".join(methods), topk, props["input"],
             precision, path, time.perf_counter() - start)
    return path


def _export(graph: nn.Module, example: torch.Tensor, dynamic: tuple[dict[int, object], ...], input_name: str,
            outputs: list[str], partial: Path, props: dict[str, str]) -> None:
    import onnx

    try:
        # the exporter reports its progress on stdout, and warns about things that do not concern the user
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), str(partial), input_names=[input_name],
                              output_names=outputs, dynamic_shapes=dynamic,
                              opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
    except Exception as exc:  # noqa: BLE001 - whatever the exporter raises, one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LivecamError(f"the model could not be exported to ONNX ({type(exc).__name__}: {first}); "
                           f"try another {option('layer')} or {option('method')} eigencam, or run it in PyTorch "
                           "(livecam run)") from None
    proto = onnx.load(str(partial))
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(partial))
