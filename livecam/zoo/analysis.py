"""What a model looks like from the explainer's side: where to look and what the head is.

One probe forward on a fixed random input records the output of every module
(in the order the modules finish), and the layout of each output
(:mod:`livecam.zoo.layout`: an (N, C, H, W) map, an (N, H, W, C) map or an
(N, T, C) token sequence on the patch grid). From that record:

- the default target layer is the last module to finish with a spatial output
  (a grid of more than one cell). Wrappers finish after what they wrap, so for
  ResNet this is ``layer4`` (after the last block's ReLU), for torchvision's
  MobileNet and EfficientNet ``features``, for EfficientNet-Lite ``_head_act``:
  the tensor that is pooled, after its activation; for timm's Swin its final
  ``norm`` (N, H, W, C). A vision transformer's last token layer is its final
  norm, and when the head reads the class token rather than the average of the
  grid, the gradient on the grid is zero there: the default is then the first
  norm of the last block (``blocks.11.norm1`` in timm, ``layernorm_before`` in
  Hugging Face, ``ln_1`` in torchvision), before the last attention mixes the
  grid into the class token, as the Grad-CAM-for-ViT literature recommends;
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
from livecam.zoo.layout import NCHW, TOKENS, Layout, detect_layout

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
    """The target layer, the head behind it, and the layout of its output.

    ``feature_shape`` is the shape of the map the methods see, (N, C, h, w)
    for the probe input (batch 1), whatever the layer's own layout;
    ``grid_gradient`` is False where the class score does not depend on the
    grid at this layer (a class-token head read at the final norm), so
    gradient methods would draw nothing.
    """

    target_layer: str
    head: Head
    feature_shape: tuple[int, ...]
    num_classes: int
    layout: Layout = Layout(NCHW, (1, 1), 1)
    grid_gradient: bool = True


@dataclass(frozen=True)
class LayerSurvey:
    """One module as ``livecam layers`` shows it: its output, its layout (or why it has none) and its head."""

    name: str
    kind: str  # the module's class name
    shape: tuple[int, ...]  # of its output for the probe input (batch 1); () when not a tensor
    layout: Layout | None
    reason: str  # why there is no layout ("" when there is one)
    head: Head | None = None
    grid_gradient: bool = True
    leaf: bool = True
    default: bool = False

    @property
    def spatial(self) -> bool:
        return self.layout is not None and self.layout.grid[0] * self.layout.grid[1] > 1


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
    # an all-zero weight (an untrained torchvision ViT's head) fits any pooling: it says nothing about the head
    candidates = [m for m in candidates if bool(m.weight.detach().abs().amax() > 0)]
    if not candidates:
        return Head(OTHER, reason=f"the Linear({channels} -> {classes}) head's weights are all zero (untrained)")
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


Record = list[tuple[str, object]]


def patch_grid(model: nn.Module, record: Record) -> tuple[int, int] | None:
    """The grid of the first convolution on the image (a ViT's patch embedding), from the probe's record."""
    modules = dict(model.named_modules())
    for name, out in record:
        conv = modules.get(name)
        if isinstance(conv, nn.Conv2d) and conv.in_channels == 3 and isinstance(out, torch.Tensor) and out.dim() == 4:
            return int(out.shape[2]), int(out.shape[3])
    return None


def layout_of(out: object, input_size: tuple[int, int], grid: tuple[int, int] | None) -> Layout | str:
    """The layout of a recorded output (batch 1), or why it has none."""
    if not isinstance(out, torch.Tensor):
        return f"it outputs a {type(out).__name__}, not a tensor"
    return detect_layout(tuple(out.shape), 1, input_size, grid)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "Norm" in type(module).__name__


def last_block_norm(model: nn.Module, record: Record, layouts: dict[str, Layout | str]) -> str | None:
    """The first norm of the last transformer block: the last parent (not the model) with two or more norms on
    token outputs (norm1 and norm2), and the first of them to run."""
    modules = dict(model.named_modules())
    norms: dict[str, list[str]] = {}
    for name, _ in record:
        layout = layouts.get(name)
        if "." in name and isinstance(layout, Layout) and layout.kind == TOKENS and _is_norm(modules[name]):
            parent = norms.setdefault(name.rsplit(".", 1)[0], [])
            if name not in parent:
                parent.append(name)
    blocks = [names for names in norms.values() if len(names) >= 2]
    return blocks[-1][0] if blocks else None


def token_head(tokens: torch.Tensor, logits: torch.Tensor, model: nn.Module, prefix: int) -> str:
    """What a transformer's head reads at its last token layer, for messages: '' when it is not a prefix token.

    Checked numerically: a Linear layer of the model applied to one prefix token
    (a class-token head), or the mean of two Linear layers applied to the first
    two (DeiT's class and distillation tokens), gives the logits.
    """
    channels, classes = tokens.shape[-1], logits.shape[1]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.in_features == channels
               and m.out_features == classes and bool(m.weight.detach().abs().amax() > 0)]
    target = logits.double()
    scale = float(target.abs().max().clamp_min(1.0))

    def apply(lin: nn.Linear, i: int) -> torch.Tensor:
        out = tokens[:, i].double() @ lin.weight.double().T
        return out + lin.bias.double() if lin.bias is not None else out

    for i in range(min(prefix, 4)):
        if any((apply(lin, i) - target).abs().max() <= 1e-4 * scale for lin in linears):
            return f"a class-token head (one Linear layer on prefix token {i})"
    if prefix >= 2 and any((0.5 * (apply(a, 0) + apply(b, 1)) - target).abs().max() <= 1e-4 * scale
                           for a in linears for b in linears if a is not b):
        return "a class- and distillation-token head (the mean of two Linear layers on prefix tokens 0 and 1)"
    return ""


def grid_gradient(model: nn.Module, x: torch.Tensor, layer: str, layout: Layout) -> bool:
    """Does the top class's score depend on the grid cells of ``layer``'s output? One forward and backward."""
    kept: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple[object, ...], out: torch.Tensor) -> torch.Tensor:
        leaf = layout.to_map(out.detach()).requires_grad_(True)
        kept.append(leaf)
        return layout.from_map(leaf, out)

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            score = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
            grads = torch.autograd.grad(score, kept, allow_unused=True)
    finally:
        handle.remove()
    return any(g is not None and bool(g.abs().amax() > 0) for g in grads)


def _probe(model: nn.Module, input_size: tuple[int, int]) -> tuple[Record, torch.Tensor, dict[str, int], torch.Tensor]:
    was_training = model.training
    model.eval()
    x = probe_input(model, input_size)
    try:
        record, logits, calls = _record_outputs(model, x)
    finally:
        model.train(was_training)
    return record, logits, calls, x


def _head_at(model: nn.Module, record: Record, logits: torch.Tensor, layer: str, layout: Layout,
             out: torch.Tensor, cls_head: str) -> Head:
    head = find_head(layout.to_map(out), logits, model, layer)
    if head.kind != GAP_LINEAR and cls_head:
        head = dataclasses.replace(head, reason=f"{cls_head}, not global average pooling and one Linear layer")
    return dataclasses.replace(head, chain=head_chain(model, record, layer))


def _transformer_head(model: nn.Module, record: Record, logits: torch.Tensor,
                      layouts: dict[str, Layout | str]) -> str:
    """:func:`token_head` at the last token layer with prefix tokens ('' for other models)."""
    outputs = dict(record)
    for name, _ in reversed(record):
        layout = layouts.get(name)
        if isinstance(layout, Layout) and layout.kind == TOKENS and layout.prefix:
            out = outputs[name]
            assert isinstance(out, torch.Tensor)
            return token_head(out, logits, model, layout.prefix)
    return ""


def _layouts(model: nn.Module, record: Record, input_size: tuple[int, int]) -> dict[str, Layout | str]:
    grid = patch_grid(model, record)
    return {name: layout_of(out, input_size, grid) for name, out in dict(record).items()}


def _default_layer(model: nn.Module, record: Record, logits: torch.Tensor,
                   layouts: dict[str, Layout | str]) -> str:
    outputs = dict(record)
    spatial = [n for n, _ in record if isinstance(layouts.get(n), Layout) and _cells(layouts[n]) > 1]
    if not spatial:
        raise LivecamError(
            "no layer of this model outputs a spatial feature map ((N, C, H, W), (N, H, W, C) or tokens on the "
            f"patch grid); name the layer to explain with {option('layer')} (livecam layers lists them)"
        )
    last = spatial[-1]
    layout = layouts[last]
    assert isinstance(layout, Layout)
    if layout.kind != TOKENS:
        return last
    out = outputs[last]
    assert isinstance(out, torch.Tensor)
    if find_head(layout.to_map(out), logits, model, last).kind == GAP_LINEAR:
        return last  # a transformer whose head averages the grid: exact at its final norm
    return last_block_norm(model, record, layouts) or last


def _cells(layout: Layout | str) -> int:
    return layout.grid[0] * layout.grid[1] if isinstance(layout, Layout) else 0


def inspect_model(model: nn.Module, input_size: tuple[int, int], layer: str | None = None) -> ModelInfo:
    """Find the target layer (or check the named one), the layout of its output and the head behind it."""
    names = [n for n, _ in model.named_modules() if n]
    if layer is not None and layer not in names:
        raise LivecamError(
            f"the model has no layer '{layer}'{suggest(layer, names)}; "
            f"leave {option('layer')} out to use the default, or name a module path such as "
            f"'{names[-1] if names else 'features'}' (livecam layers lists them)"
        )
    record, logits, calls, x = _probe(model, input_size)
    outputs = dict(record)  # the last call of each module wins
    layouts = _layouts(model, record, input_size)
    explicit = layer is not None
    if layer is None:
        layer = _default_layer(model, record, logits, layouts)
    elif layer not in outputs:
        raise LivecamError(
            f"layer '{layer}' does not run in the model's forward pass; name another with {option('layer')}"
        )
    layout = layouts[layer]
    if not isinstance(layout, Layout):
        out = outputs[layer]
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise LivecamError(
            f"layer '{layer}' outputs {shape}, which has no spatial layout: {layout}; "
            f"name a layer with a feature map or patch tokens with {option('layer')} (livecam layers lists them)"
        )
    if calls.get(layer, 0) > 1:
        log.warning(
            "layer '%s' runs %d times per forward pass; its last call is explained", layer, calls[layer]
        )
    out = outputs[layer]
    assert isinstance(out, torch.Tensor)
    head = _head_at(model, record, logits, layer, layout, out, _transformer_head(model, record, logits, layouts))
    # a layer the user named, or a transformer's final norm: is the score a function of its grid at all?
    checks = layout.kind == TOKENS and layout.prefix > 0 and head.kind != GAP_LINEAR and explicit
    return ModelInfo(
        target_layer=layer,
        head=head,
        feature_shape=tuple(layout.to_map(out).shape),
        num_classes=logits.shape[1],
        layout=layout,
        grid_gradient=grid_gradient(model, x, layer, layout) if checks else True,
    )


def survey_layers(model: nn.Module, input_size: tuple[int, int]) -> list[LayerSurvey]:
    """Every module that runs, in the order it finishes, with its output's layout and the head behind it.

    For ``livecam layers``. One probe forward finds the layouts; one more with
    every grid output kept for the gradient says where the top class's score
    depends on the grid (a class-token head read at the final norm does not).
    """
    record, logits, _, x = _probe(model, input_size)
    layouts = _layouts(model, record, input_size)
    outputs = dict(record)
    modules = dict(model.named_modules())
    default = _default_layer(model, record, logits, layouts) if any(_cells(v) > 1 for v in layouts.values()) else ""
    cls_head = _transformer_head(model, record, logits, layouts)
    zero = _zero_grid_gradients(model, x, {n: v for n, v in layouts.items() if isinstance(v, Layout)})
    seen: set[str] = set()
    rows = []
    for name, _ in record:
        if name in seen:
            continue
        seen.add(name)
        out, layout = outputs[name], layouts[name]
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
        head = None
        if isinstance(layout, Layout) and isinstance(out, torch.Tensor) and _cells(layout) > 1:
            head = _head_at(model, record, logits, name, layout, out, cls_head)
        rows.append(LayerSurvey(
            name=name, kind=type(modules[name]).__name__, shape=shape,
            layout=layout if isinstance(layout, Layout) else None, reason=layout if isinstance(layout, str) else "",
            head=head, grid_gradient=name not in zero, leaf=next(modules[name].children(), None) is None,
            default=name == default,
        ))
    return rows


def _zero_grid_gradients(model: nn.Module, x: torch.Tensor, layouts: dict[str, Layout]) -> set[str]:
    """The modules whose output's grid cells have a zero gradient of the top class's score (one backward).

    The input requires grad so that every output is in the autograd graph; the
    gradients are taken with respect to the kept outputs alone (no parameter's
    ``.grad`` is filled). Where the graph cannot be built (an in-place operation
    on a kept output), nothing is reported.
    """
    kept: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable[[nn.Module, tuple[object, ...], object], None]:
        def hook(_module: nn.Module, _inputs: tuple[object, ...], out: object) -> None:
            if isinstance(out, torch.Tensor) and out.requires_grad:
                kept[name] = out

        return hook

    handles = [model.get_submodule(n).register_forward_hook(make_hook(n)) for n in layouts]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            score = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
            grads = torch.autograd.grad(score, list(kept.values()), allow_unused=True)
    except RuntimeError:
        return set()
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {name for (name, _), grad in zip(kept.items(), grads, strict=True)
            if grad is None or not bool(layouts[name].to_map(grad).abs().amax() > 0)}
