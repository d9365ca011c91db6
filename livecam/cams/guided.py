"""Guided Backpropagation and Guided Grad-CAM: maps at the input's full resolution.

Guided Backpropagation (Springenberg et al. 2015, section 3.4) is the gradient of
the class score with respect to the input pixels, with one change to the
backward rule of every ReLU: a gradient passes only where the forward input was
positive *and* the gradient arriving from above is positive,

    R_l = 1[f_l > 0] * 1[R_{l+1} > 0] * R_{l+1}.

Here every ReLU-family activation follows that rule: ``nn.ReLU``, ``F.relu``,
``torch.relu``, their in-place forms, ``nn.ReLU6``/``F.relu6`` and
``F.hardtanh(x, 0, max)`` (for a clamp to [0, max] the local gradient is 1[0 < f < max]).
They are swapped while the guided forward pass runs, through a
``TorchFunctionMode``, so activations called as functions inside ``forward`` are
covered as well as modules.

Guided Grad-CAM (Selvaraju et al. 2017, section 3) multiplies the guided
gradient, pointwise, by the Grad-CAM map upsampled bilinearly to the input.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, SupportsFloat

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import BackwardCFunction, FunctionCtx
from torch.overrides import TorchFunctionMode

from livecam.cams.base import Capture, CamMethod, normalize_maps, spatial_size, upsample_maps
from livecam.cams.gradient import GradCAM


class _GuidedClamp(torch.autograd.Function):
    """clamp(x, lo, hi) forward; the guided rule backward."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, lo: float, hi: float | None) -> torch.Tensor:
        inside = x > lo if hi is None else (x > lo) & (x < hi)
        ctx.save_for_backward(inside)
        return x.clamp(min=lo) if hi is None else x.clamp(lo, hi)

    @staticmethod
    def backward(ctx: BackwardCFunction, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inside,) = ctx.saved_tensors
        return torch.where(inside & (grad > 0), grad, torch.zeros_like(grad)), None, None


def _arg(args: Sequence[object], kwargs: Mapping[str, object], i: int, name: str, default: object) -> object:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _number(args: Sequence[object], kwargs: Mapping[str, object], i: int, name: str, default: float) -> float:
    """A numeric argument (hardtanh's ``min_val``, ``max_val``) as a float."""
    value = _arg(args, kwargs, i, name, default)
    if not isinstance(value, SupportsFloat):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    return float(value)


class GuidedReLU(TorchFunctionMode):
    """While active, ReLU, ReLU6 and hardtanh(0, max) backpropagate by the guided rule.

    In-place calls keep their meaning: the guided result is copied into the
    input tensor, which is returned (autograd records the copy).
    """

    _RELU = {torch.relu, torch.Tensor.relu}
    _RELU_ = {torch.relu_, torch.Tensor.relu_, F.relu_}

    def __torch_function__(self, func: Callable[..., Any], types: Collection[type], args: Sequence[object] = (),
                           kwargs: dict[str, object] | None = None) -> Any:  # whatever ``func`` returns
        kwargs = kwargs or {}
        bounds: tuple[float, float | None] | None = None
        inplace = False
        if func is F.relu:
            bounds, inplace = (0.0, None), bool(_arg(args, kwargs, 1, "inplace", False))
        elif func in self._RELU:
            bounds = (0.0, None)
        elif func in self._RELU_:
            bounds, inplace = (0.0, None), True
        elif func is F.relu6:
            bounds, inplace = (0.0, 6.0), bool(_arg(args, kwargs, 1, "inplace", False))
        elif func is F.hardtanh and _number(args, kwargs, 1, "min_val", -1.0) == 0.0:
            bounds = (0.0, _number(args, kwargs, 2, "max_val", 1.0))
            inplace = bool(_arg(args, kwargs, 3, "inplace", False))
        if bounds is None:
            return func(*args, **kwargs)
        x = args[0]
        if not isinstance(x, torch.Tensor):  # the function itself says what is wrong with it
            return func(*args, **kwargs)
        out: torch.Tensor = _GuidedClamp.apply(x, *bounds)
        if inplace:
            return x.copy_(out)
        return out


def guided_backprop(module: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """d y^c / d x under the guided rule: (N, 3, H, W) float32, one backward pass for the batch.

    The module's parameters stay untouched (no ``.grad`` is filled): the
    gradient is taken with respect to the input alone. Samples are independent
    in eval mode, so the summed scores give every sample's gradient at once.
    """
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad(), GuidedReLU():
        logits = module(inputs)
    score = logits.gather(1, classes[:, None]).sum()
    (grad,) = torch.autograd.grad(score, inputs)
    return grad.float()


def guided_detail(module: nn.Module, x: torch.Tensor, classes: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """The guided gradient times a CAM (N, h, w), normalized and upsampled bilinearly to the input: (N, 3, H, W).

    With Grad-CAM's map this is Guided Grad-CAM; with another method's, its guided counterpart.
    """
    guided = guided_backprop(module, x, classes)
    return guided * upsample_maps(normalize_maps(cam), spatial_size(guided))[:, None]


def saliency(detail: torch.Tensor) -> torch.Tensor:
    """An input-space map (N, 3, H, W) -> one value per pixel, (N, H, W): the largest |value| over colours."""
    return detail.abs().amax(dim=1)


class GuidedBackprop(CamMethod):
    """Guided Backpropagation (Springenberg et al. 2015): the guided gradient of y^c.

    ``detail`` holds the signed gradient image (N, 3, H, W); the map is its
    largest absolute value over the colour channels, at the input's resolution.
    Class-discriminative only weakly: it shows edges the network responds to.

    Paper: https://arxiv.org/abs/1412.6806
    """

    name = "guided"
    needs_grad = False
    needs_input = True

    def compute(self, cap: Capture) -> torch.Tensor:
        cap.detail = guided_backprop(*cap.rerun(), cap.classes)
        return saliency(cap.detail)


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided gradient x upsampled Grad-CAM.

    detail = G^c * Up(L^c_Grad-CAM), pointwise per colour channel, with the
    Grad-CAM map min-max normalized before the product (a positive scale,
    which the final normalization removes). The map is the largest absolute
    value over the colour channels.

    Paper: https://arxiv.org/abs/1610.02391
    """

    name = "guidedgradcam"
    needs_grad = True
    needs_input = True

    def compute(self, cap: Capture) -> torch.Tensor:
        cap.detail = guided_detail(*cap.rerun(), cap.classes, super().compute(cap))
        return saliency(cap.detail)
