"""What every CAM method shares: the hook, the per-call capture, normalization, the result.

The hook is registered once on the target layer and reused for every frame.
While an explanation runs it replaces the layer's output with a copy of a
detached leaf that requires grad: the forward pass builds an autograd graph only
from that layer on (the parameters are frozen), and the class score's gradient
is taken with ``torch.autograd.grad`` with respect to that leaf alone, so the
backward pass never reaches the parameters and no ``.grad`` is ever filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from livecam.errors import LivecamError, option
from livecam.zoo.analysis import Head
from livecam.zoo.layout import NCHW, Layout


class ActivationHook:
    """A forward hook on one layer, registered once, switched on per explanation.

    While ``enabled``, each call stores the layer's output as ``activation``, the
    (N, C, h, w) map of its ``layout`` (a token sequence without its prefix
    tokens, or a channels-last map, permuted): a detached tensor, a leaf that
    requires grad when ``needs_grad`` and grad mode is on. The rest of the
    network gets a copy of it in the layer's own layout (with the prefix tokens
    as they were), so that in-place operations downstream
    (``F.relu(x, inplace=True)``) cannot change what was stored, and the
    gradient reaches the map alone. While disabled it does nothing.
    """

    def __init__(self, layer: nn.Module, needs_grad: bool, layout: Layout | None = None) -> None:
        self.needs_grad = needs_grad
        self.layout = layout
        self.enabled = False
        self.activation: torch.Tensor | None = None
        self._handle = layer.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs: tuple[object, ...], output: object) -> torch.Tensor | None:
        if not self.enabled:
            return None
        if not isinstance(output, torch.Tensor):
            raise LivecamError(
                f"the target layer outputs {type(output).__name__}, not a tensor; pick another with {option('layer')}"
            )
        layout = self.layout
        if layout is None or layout.kind == NCHW:
            leaf = output.detach()
            if self.needs_grad and torch.is_grad_enabled():
                leaf.requires_grad_(True)
            self.activation = leaf
            return leaf.clone()
        leaf = layout.to_map(output.detach())
        if self.needs_grad and torch.is_grad_enabled():
            leaf.requires_grad_(True)
        self.activation = leaf
        return layout.from_map(leaf, output)

    def remove(self) -> None:
        self._handle.remove()
        self.activation = None


@dataclass
class Capture:
    """One forward pass as a method sees it: A, the logits and the explained classes.

    ``head_weight`` is the weight of a GAP -> Linear head, when the explainer
    uses its closed-form gradient instead of a backward pass. ``contrast``
    (N, classes), set from the method's :meth:`CamMethod.contrast`, makes the
    explained score the combination of logits ``contrast . y`` instead of y^c
    (Finer-CAM's comparison with similar classes). ``module`` and ``inputs``
    are there for methods that run the model again (Score-CAM's masked inputs,
    the guided pass to the input); such methods may leave an input-space map
    (N, 3, H, W) in ``detail``.
    """

    activation: torch.Tensor  # A: (N, K, h, w), as the model computed it
    logits: torch.Tensor  # (N, classes)
    classes: torch.Tensor  # (N,) int64
    head_weight: torch.Tensor | None = None  # (classes, K)
    module: nn.Module | None = None
    inputs: torch.Tensor | None = None  # (N, 3, H, W), as the model took them
    detail: torch.Tensor | None = None
    contrast: torch.Tensor | None = None  # (N, classes): the explained score is contrast . logits, not y^c
    _grads: torch.Tensor | None = field(default=None, repr=False)

    def class_scores(self) -> torch.Tensor:
        """The explained score of each sample, (N,): y^c, the pre-softmax score of its explained class, or
        ``contrast . y`` where the method sets a contrast."""
        if self.contrast is not None:
            return (self.logits * self.contrast.detach().to(self.logits.dtype)).sum(dim=1)
        return self.logits.gather(1, self.classes[:, None]).squeeze(1)

    def head_rows(self) -> torch.Tensor:
        """d y^c / d GAP(A) for a GAP -> Linear head: W_c, or ``contrast @ W`` with a contrast; (N, K) float32."""
        assert self.head_weight is not None, "only for a GAP -> Linear head"
        weight = self.head_weight.detach()
        if self.contrast is not None:
            return self.contrast.detach().float() @ weight.float()
        return weight[self.classes].float()

    def gradients(self) -> torch.Tensor:
        """d y^c / d A, (N, K, h, w), y^c the explained score (:meth:`class_scores`).

        For a GAP -> Linear head, y^c = W_c . mean_ij(A_ij) + b_c, so the
        gradient is W_c,k / (h w) at every pixel (Selvaraju et al. 2017,
        section 3.1), in float32 and with no backward pass; for a contrast
        of the logits, that of the same contrast of W's rows. Otherwise one
        backward pass of the summed scores, stopping at A, gives every
        sample's gradient (samples are independent in eval mode).
        """
        if self._grads is None:
            if self.head_weight is not None:
                h, w = self.activation.shape[-2:]
                per_channel = self.head_rows() / (h * w)
                self._grads = per_channel[:, :, None, None].expand(self.activation.shape)
            elif self.activation.requires_grad:
                (self._grads,) = torch.autograd.grad(self.class_scores().sum(), self.activation)
            else:
                raise RuntimeError("this method declared needs_grad=False but asked for gradients")
        return self._grads

    def gradient_means(self) -> torch.Tensor:
        """mean_ij d y^c / d A^k_ij, (N, K, 1, 1) in float32: Grad-CAM's channel weights.

        For a GAP -> Linear head the gradient is the same at every pixel, so its
        mean is W_c,k / (h w) itself, taken without spreading it over the map
        first (which an exported graph would do in memory, then average again).
        """
        if self._grads is None and self.head_weight is not None:
            h, w = self.activation.shape[-2:]
            return (self.head_rows() / (h * w))[:, :, None, None]
        return self.gradients().float().mean(dim=(2, 3), keepdim=True)

    def rerun(self) -> tuple[nn.Module, torch.Tensor]:
        """``module`` and ``inputs``, for a method that runs the model again (one that declares ``needs_input``)."""
        if self.module is None or self.inputs is None:
            raise RuntimeError("this method declared needs_input=False but runs the model again")
        return self.module, self.inputs


class CamMethod:
    """One explanation method: its paper's formula in ``compute``.

    ``compute`` returns the method's low-resolution map (N, h, w) in float32,
    as its paper defines it (for Grad-CAM, after the ReLU); the caller
    upsamples and normalizes.
    """

    name: str = ""
    needs_grad: bool = True  # d y^c / d A
    needs_input: bool = False  # runs the model again on the input (not real-time, and not on the device step)

    def __init__(self, head: Head) -> None:
        """Methods that need the classifier head (CAM) check and keep it here."""

    def contrast(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor | None:
        """The combination of logits (N, classes) whose gradient the method takes, from the logits (N, classes)
        and the explained classes (N,); None (every method but Finer-CAM): the class score y^c itself."""
        return None

    def compute(self, cap: Capture) -> torch.Tensor:
        raise NotImplementedError


def normalize_maps(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Min-max normalize each (h, w) map of (N, h, w) to [0, 1], in float32.

    A flat map (max - min <= eps, all-zero maps included) becomes all zeros,
    never NaN.
    """
    m = maps.float()
    flat = m.flatten(1)
    lo = flat.amin(dim=1)[:, None, None]
    span = (flat.amax(dim=1)[:, None, None] - lo)
    return safe_divide(m - lo, span, span > eps)


def safe_divide(num: torch.Tensor, den: torch.Tensor, ok: torch.Tensor | None = None) -> torch.Tensor:
    """num / den where ``ok`` (default: den != 0), and 0 elsewhere: never inf or NaN, no host sync."""
    ok = den != 0 if ok is None else ok
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def spatial_size(t: torch.Tensor) -> tuple[int, int]:
    """(H, W) of a (..., H, W) tensor: the size :func:`upsample_maps` takes."""
    return t.shape[-2], t.shape[-1]


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (N, h, w) -> (N, H, W), in float32."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    return F.interpolate(maps.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


@dataclass
class Explanation:
    """The result of explaining a batch.

    ``cams``: (N, H, W) float32 in [0, 1] on the model's device (H, W: the
    input's size unless asked otherwise); ``raw``: the method's map at the
    layer's resolution, before upsampling and normalization; ``classes`` (N,)
    the explained classes; ``scores`` (N,) their softmax probabilities;
    ``logits`` (N, classes); ``detail``: for guided methods, the signed
    input-space map (N, 3, H, W) float32 (the guided gradient, or its product
    with Grad-CAM), else None.
    """

    cams: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    logits: torch.Tensor
    raw: torch.Tensor
    method: str
    layer: str
    detail: torch.Tensor | None = None


def drop_copied_hooks(module: nn.Module) -> int:
    """Take off ``module`` (a deep copy of a model) the explainers' hooks the copy carried over from the original:
    they belong to the original's explainers, so on the copy they would only capture activations for nobody.
    Returns how many were dropped."""
    dropped = 0
    for layer in module.modules():
        for key, hook in list(layer._forward_hooks.items()):
            if isinstance(getattr(hook, "__self__", None), ActivationHook):
                del layer._forward_hooks[key]
                dropped += 1
    return dropped
