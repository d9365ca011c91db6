"""What a model looks like from the explainer's side: where to look and what the head is.

One probe forward on a fixed random input records the output of every module
(in the order the modules finish). From that record:

- the default target layer is the last module to finish with a spatial output
  (N, C, H, W) with H * W > 1. Wrappers finish after what they wrap, so for
  ResNet this is ``layer4`` (after the last block's ReLU), for torchvision's
  MobileNet and EfficientNet ``features``, for EfficientNet-Lite ``_head_act``:
  the tensor that is pooled, after its activation;
- the head is "GAP -> (dropout) -> Linear" when a Linear layer of the model maps
  the spatially averaged target activation to the logits, checked numerically
  (an eval-mode dropout is the identity). Only such heads have a CAM;
- the head's ``chain`` names the leaf modules that finish after the target layer,
  in order ("AdaptiveAvgPool2d -> Dropout -> Linear(1280 -> 1000)"), so that a
  message about the head can say what the head is. Functional operations in a
  ``forward`` (``torch.flatten``, ``F.adaptive_avg_pool2d``) are not modules and
  do not appear.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from livecam.choices import suggest
from livecam.errors import LivecamError, option

log = logging.getLogger(__name__)

GAP_LINEAR = "gap_linear"
OTHER = "other"


@dataclass(frozen=True)
class Head:
    """The classifier head behind a target layer.

    ``kind`` is ``"gap_linear"`` when logits = W @ mean_hw(A) + b, and then
    ``linear`` is that Linear layer; otherwise ``kind`` is ``"other"`` and
    ``reason`` says why the head is not GAP -> Linear. ``chain`` describes the
    leaf modules that run after the target layer in the probe forward pass.
    """

    kind: str
    linear: nn.Linear | None = None
    reason: str = ""
    chain: str = ""


@dataclass(frozen=True)
class ModelInfo:
    target_layer: str
    head: Head
    feature_shape: tuple[int, ...]  # of the target activation for the probe input (batch 1)
    num_classes: int


def probe_input(model: nn.Module, input_size: tuple[int, int]) -> torch.Tensor:
    """A fixed pseudo-random batch of one normalized image, on the model's device."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, *input_size, generator=gen)
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    return x


def _record_outputs(model: nn.Module, x: torch.Tensor) -> tuple[list[tuple[str, object]], torch.Tensor, dict[str, int]]:
    """Run ``model(x)`` recording (name, output) as each module finishes."""
    record: list[tuple[str, object]] = []
    calls: dict[str, int] = {}

    def make_hook(name: str) -> Callable[[nn.Module, tuple[object, ...], object], None]:
        def hook(_module: nn.Module, _inputs: tuple[object, ...], output: object) -> None:
            calls[name] = calls.get(name, 0) + 1
            # Clone: an in-place op after the module (F.relu(x, inplace=True)) must not
            # change what we recorded.
            record.append((name, output.detach().clone() if isinstance(output, torch.Tensor) else output))

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise LivecamError(
            f"the model returns {type(logits).__name__} of shape {getattr(logits, 'shape', '?')}, "
            "not a (batch, classes) tensor of logits; livecam explains image classifiers"
        )
    return record, logits, calls


def _is_spatial(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[2] * t.shape[3] > 1


def find_head(activation: torch.Tensor, logits: torch.Tensor, model: nn.Module, layer: str) -> Head:
    """Is ``logits`` a Linear map of the spatially averaged ``activation``?"""
    channels, classes = activation.shape[1], logits.shape[1]
    candidates = [
        m for m in model.modules()
        if isinstance(m, nn.Linear) and m.in_features == channels and m.out_features == classes
    ]
    if not candidates:
        return Head(OTHER, reason=(
            f"no Linear({channels} -> {classes}) layer maps the {channels} channels of '{layer}' to the logits"
        ))
    pooled = activation.double().mean(dim=(2, 3))
    target = logits.double()
    scale = target.abs().max().clamp_min(1.0)
    for lin in candidates:
        pred = pooled @ lin.weight.double().T
        if lin.bias is not None:
            pred = pred + lin.bias.double()
        if (pred - target).abs().max() <= 1e-4 * scale:
            return Head(GAP_LINEAR, linear=lin)
    return Head(OTHER, reason=(
        f"the layers between '{layer}' and the logits are not global average pooling "
        "followed by one Linear layer"
    ))


def describe_module(module: nn.Module) -> str:
    """A short name for a leaf module: 'Linear(960 -> 1280)', 'Conv2d(512 -> 1000, 1x1)', 'Hardswish'."""
    kind = type(module).__name__
    if isinstance(module, nn.Linear):
        return f"{kind}({module.in_features} -> {module.out_features})"
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return f"{kind}({module.in_channels} -> {module.out_channels}, {kh}x{kw})"
    return kind


def head_chain(model: nn.Module, record: list[tuple[str, object]], layer: str, limit: int = 8) -> str:
    """The leaf modules that finish after ``layer``'s last call, as 'A -> B -> C' (long chains elided)."""
    last = max(i for i, (name, _) in enumerate(record) if name == layer)
    modules = dict(model.named_modules())
    leaves = [describe_module(modules[name]) for name, _ in record[last + 1:]
              if name in modules and next(modules[name].children(), None) is None]
    if not leaves:
        return "no modules (functional operations only)"
    if len(leaves) > limit:
        leaves = [*leaves[:3], f"... ({len(leaves) - 7} more) ...", *leaves[-4:]]
    return " -> ".join(leaves)


def inspect_model(model: nn.Module, input_size: tuple[int, int], layer: str | None = None) -> ModelInfo:
    """Find the target layer (or check the named one) and the head behind it."""
    names = [n for n, _ in model.named_modules() if n]
    if layer is not None and layer not in names:
        raise LivecamError(
            f"the model has no layer '{layer}'{suggest(layer, names)}; "
            f"leave {option('layer')} out to use the last feature map, or name a module path such as "
            f"'{names[-1] if names else 'features'}'"
        )
    was_training = model.training
    model.eval()
    try:
        record, logits, calls = _record_outputs(model, probe_input(model, input_size))
    finally:
        model.train(was_training)
    outputs = dict(record)  # the last call of each module wins
    if layer is None:
        layer = next((n for n, out in reversed(record) if _is_spatial(out)), None)
        if layer is None:
            raise LivecamError(
                "no layer of this model outputs a spatial feature map (N, C, H, W); "
                f"name the layer to explain with {option('layer')}"
            )
    elif layer not in outputs:
        raise LivecamError(
            f"layer '{layer}' does not run in the model's forward pass; name another with {option('layer')}"
        )
    out = outputs[layer]
    if not (isinstance(out, torch.Tensor) and out.dim() == 4):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise LivecamError(
            f"layer '{layer}' outputs {shape}, not a (N, C, H, W) feature map; "
            f"name a convolutional layer with {option('layer')}"
        )
    if calls.get(layer, 0) > 1:
        log.warning(
            "layer '%s' runs %d times per forward pass; its last call is explained", layer, calls[layer]
        )
    head = dataclasses.replace(find_head(out, logits, model, layer), chain=head_chain(model, record, layer))
    return ModelInfo(
        target_layer=layer,
        head=head,
        feature_shape=tuple(out.shape),
        num_classes=logits.shape[1],
    )
