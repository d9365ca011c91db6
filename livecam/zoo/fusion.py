"""Fold eval-mode BatchNorm into the convolution before it, for inference speed.

In eval mode a BatchNorm2d is a per-channel affine map,
``y = gamma * (x - mean) / sqrt(var + eps) + beta``. When ``x`` is the output of
a Conv2d with weight W and bias b, the pair equals one Conv2d with

    W' = W * s (per output channel),  b' = (b - mean) * s + beta,  s = gamma / sqrt(var + eps)

and the BatchNorm becomes the identity. That saves one pass over every
normalized activation: on the 2-core CPU, EfficientNet-Lite0's forward goes from
about 8.5 to 7.5 ms at 224x224 (49 pairs).

Pairs are found by one probe forward: a BatchNorm2d whose input is the very
tensor a Conv2d returned. A pair whose convolution is the target layer is kept
as it is (so is one whose BatchNorm is the target layer), since folding would
change the activation being explained. The fold is
checked numerically on the probe input (the logits and the target activation)
and undone when they differ, e.g. when a convolution's output also feeds
something other than its BatchNorm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeAlias

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class _Pair:
    conv: nn.Conv2d
    bn: nn.BatchNorm2d
    parent: nn.Module
    attr: str
    weight: torch.Tensor
    bias: torch.Tensor | None


def fold_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) with bn(x) = s * x + t per channel, in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm2d without running statistics normalizes by the batch: it has no fixed (s, t)")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


FoundPair: TypeAlias = tuple[str, nn.Conv2d, str, nn.BatchNorm2d]


def _conv_bn_pairs(module: nn.Module, x: torch.Tensor, keep: set[str]) -> list[FoundPair]:
    """(conv name, conv, bn name, bn) for each eval BatchNorm2d that takes a Conv2d's output directly."""
    # Each convolution's output is kept alive during the probe: a freed tensor's id() can be reused
    # by a later tensor (DenseNet's concatenations), which would pair a BatchNorm with the wrong conv.
    produced: dict[int, tuple[str, nn.Conv2d, torch.Tensor]] = {}
    pairs: list[FoundPair] = []
    names = {id(m): n for n, m in module.named_modules()}

    def hook(mod: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        if isinstance(mod, nn.BatchNorm2d):
            source = produced.get(id(inputs[0])) if inputs else None
            if source is not None and source[2] is inputs[0] and source[1].out_channels == mod.num_features \
                    and source[0] not in keep and names[id(mod)] not in keep:
                pairs.append((source[0], source[1], names[id(mod)], mod))
        elif isinstance(mod, nn.Conv2d) and isinstance(output, torch.Tensor):
            produced[id(output)] = (names[id(mod)], mod, output)

    foldable = [m for m in module.modules()
                if isinstance(m, nn.Conv2d) or (isinstance(m, nn.BatchNorm2d) and not m.training
                                                and m.running_mean is not None)]
    handles = [m.register_forward_hook(hook) for m in foldable]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    seen: set[int] = set()
    unique = []
    for pair in pairs:  # a module called twice is folded once, and only if always paired the same way
        if id(pair[1]) not in seen and id(pair[3]) not in seen:
            seen.update((id(pair[1]), id(pair[3])))
            unique.append(pair)
    return unique


def fold_batchnorm(module: nn.Module, x: torch.Tensor, target_layer: str) -> int:
    """Fold BatchNorm2d layers into their Conv2d in place; returns how many were folded.

    ``x`` is a probe input on the module's device. Nothing changes (and 0 is
    returned) when the module is training or when the folded model's logits or
    target activation differ from the original's.
    """
    if module.training:
        return 0
    target = module.get_submodule(target_layer)
    found = _conv_bn_pairs(module, x, keep={target_layer})
    if not found:
        return 0
    seen_target: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda _m, _i, out: seen_target.append(out.detach().clone()))
    try:
        with torch.no_grad():
            before = module(x).detach().clone()
            pairs = []
            for _, conv, bn_name, bn in found:
                parent_name, _, attr = bn_name.rpartition(".")
                parent = module.get_submodule(parent_name)
                pairs.append(_Pair(conv, bn, parent, attr, conv.weight.detach().clone(), conv.bias))
                scale, shift = fold_scale_shift(bn)
                bias = conv.bias.detach() * scale + shift if conv.bias is not None else shift
                conv.weight.copy_(conv.weight * scale.reshape(-1, *[1] * (conv.weight.dim() - 1)))
                conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=conv.weight.requires_grad)
                setattr(parent, attr, nn.Identity())
            after = module(x)
    finally:
        handle.remove()
    half = len(seen_target) // 2
    compared = [(before, after), *zip(seen_target[:half], seen_target[half:], strict=True)]
    close = all(torch.allclose(b.float(), a.float(), rtol=1e-3, atol=1e-4 * float(b.abs().max()) + 1e-6)
                for b, a in compared)
    if close:
        log.debug("folded %d BatchNorm layers into their convolutions", len(pairs))
        return len(pairs)
    log.info("BatchNorm folding changed the model's output; running it unfolded")
    with torch.no_grad():
        for p in pairs:
            p.conv.weight.copy_(p.weight)
            p.conv.bias = p.bias
            setattr(p.parent, p.attr, p.bn)
    return 0
