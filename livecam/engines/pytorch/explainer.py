"""The Explainer: a model, a method and a target layer, ready to explain batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from livecam.cams import METHODS, ActivationHook, Capture, Explanation, normalize_maps, upsample_maps
from livecam.cams.guided import guided_detail
from livecam.choices import suggest
from livecam.closing import Closing
from livecam.errors import LivecamError, option
from livecam.timing import Timer, no_timer
from livecam.zoo import LoadedModel, Preprocess, inspect_model
from livecam.zoo.analysis import GAP_LINEAR

ClassSpec = int | Sequence[int] | torch.Tensor | None
MAKE_BATCH = "make one from BGR uint8 frames with livecam.to_input(frames, explainer.preprocess)"


def check_batch(x: object) -> None:
    """What the Explainer takes: a normalized float torch tensor (N, 3, H, W). Anything else is refused with
    what to do: an array or an integer tensor would otherwise be cast and explained as if it were normalized."""
    if not isinstance(x, torch.Tensor):
        kind = type(x).__name__ if type(x).__module__ == "builtins" else f"{type(x).__module__}.{type(x).__name__}"
        shape = getattr(x, "shape", None)
        raise LivecamError(
            f"the Explainer takes a torch tensor, not a {kind}{'' if shape is None else f' of shape {tuple(shape)}'}: "
            f"a normalized float batch (N, 3, H, W); {MAKE_BATCH}, or wrap a normalized float array with "
            "torch.from_numpy(x)")
    if not x.is_floating_point():
        raise LivecamError(
            f"the Explainer takes a normalized float tensor (N, 3, H, W), not a {str(x.dtype).replace('torch.', '')} "
            f"one (raw pixels would be explained as if normalized); {MAKE_BATCH}")
    if x.dim() != 4:
        one = "; for one image, x[None]" if x.dim() == 3 else ""
        raise LivecamError(f"the Explainer takes a batch of images (N, 3, H, W), not a tensor of shape "
                           f"{tuple(x.shape)}{one}")


class Explainer(Closing):
    """Explain a classifier's decisions with a CAM method: class activation maps for a batch, in one call.

    The hook on the target layer is registered here, once, and reused for every
    call; :meth:`remove` (or leaving a ``with`` block) takes it off. A plain module
    is put in eval mode and its parameters are frozen (the backward pass never
    needs them).

    Args:
        model: a :class:`~livecam.zoo.LoadedModel` or any ``nn.Module`` classifier.
        method: one of :data:`livecam.METHODS` (``gradcam``, ``gradcampp``, ``scorecam``, ...).
        layer: the target module (dotted path); None: the last spatial feature map before the pooling head.
        input_size: (height, width) of a plain module's input (a LoadedModel brings its own).
        gradients: ``"auto"`` takes the closed form d y^c / d A = W_c / (h w) when the head is global average
            pooling and one Linear layer (checked numerically when the model is inspected), so no autograd
            graph is built; ``"autograd"`` always runs the backward pass (from the class score to the target
            layer only).

    Returns from a call: an :class:`~livecam.cams.Explanation` with ``cams`` (N, H, W) float32 in [0, 1]
    (one row per explained class and sample with ``topk``), ``classes``, ``scores`` and ``logits``.

    Example::

        >>> with livecam.Explainer(livecam.load_model("efficientnet_lite0"), method="gradcam") as explainer:
        ...     result = explainer(x)  # x: a normalized (N, 3, H, W) float32 batch
        >>> result.cams.shape, result.classes
    """

    def __init__(
        self,
        model: LoadedModel | nn.Module,
        method: str = "gradcam",
        layer: str | None = None,
        input_size: tuple[int, int] = (224, 224),
        gradients: str = "auto",
    ) -> None:
        if method not in METHODS:
            raise LivecamError(
                f"unknown method '{method}'{suggest(method, list(METHODS))}; choose one of {', '.join(METHODS)}"
            )
        if isinstance(model, LoadedModel):
            self.module = model.module
            self.preprocess = model.preprocess
            same_layer = layer is None or layer == model.target_layer
            self.info = model.info if same_layer else inspect_model(model.module, model.preprocess.size, layer)
        else:
            self.module = model.eval().requires_grad_(False)
            size = (input_size[0], input_size[1])  # a list is taken too
            self.preprocess = Preprocess(size)
            self.info = inspect_model(model, size, layer)
        if gradients not in ("auto", "autograd"):
            raise LivecamError(f"gradients must be 'auto' or 'autograd', not '{gradients}'")
        self.method = METHODS[method](self.info.head)
        self.layer = self.info.target_layer
        head = self.info.head
        linear = head.linear if gradients == "auto" and head.kind == GAP_LINEAR else None
        analytic = linear is not None
        self._head_weight = linear.weight if linear is not None else None
        self._autograd = self.method.needs_grad and not analytic
        if self.method.needs_grad and not self.info.grid_gradient:
            raise LivecamError(
                f"{method} at '{self.layer}' would draw nothing: {head.reason or 'the head does not read its grid'}, "
                f"so the class score's gradient on its grid is zero; leave {option('layer')} out to explain the "
                "first norm of the last block, or use eigencam"
            )
        self.hook = ActivationHook(self.module.get_submodule(self.layer), needs_grad=self._autograd,
                                   layout=self.info.layout)

    @property
    def device(self) -> torch.device:
        param = next(self.module.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        param = next(self.module.parameters(), None)
        return param.dtype if param is not None else torch.float32

    def __call__(
        self,
        x: torch.Tensor,
        classes: ClassSpec = None,
        size: tuple[int, int] | None = None,
        upsample: bool = True,
        timer: Timer = no_timer,
        topk: int = 1,
        guided: bool = False,
    ) -> Explanation:
        """Explain a normalized float batch ``x`` of shape (N, 3, H, W) (a torch tensor, as
        :func:`livecam.to_input` makes from BGR uint8 frames; anything else is refused).

        ``classes``: the class to explain per sample (an int for all, a
        sequence or tensor of N), by default each sample's top-1. The maps come
        back at ``size`` (default: the input's H, W), or at the layer's own
        resolution with ``upsample=False`` (guided methods: the input's).
        ``timer`` (a :class:`StageTimer`) records the stages ``forward``,
        ``backward`` and ``cam``.

        ``topk=K`` (with ``classes=None``) explains each sample's K most
        probable classes from one forward pass, their gradients from one
        batched backward pass (none for GAP -> Linear heads): the result then
        has N * K rows, sample i's j-th class at row i * K + j. ``guided=True``
        adds ``detail``, the guided gradient times the upsampled map (Guided
        Grad-CAM for ``gradcam``), for methods that have none of their own.
        """
        capture, raw = self._run(x, classes, timer, topk=topk)
        return self._explanation(x, capture, raw, size, upsample, timer, guided)

    def beside(self, other: Explainer, x: torch.Tensor, classes: ClassSpec = None, upsample: bool = True,
               timer: Timer = no_timer) -> tuple[Explanation, Explanation]:
        """Explain ``x`` with this explainer's method and ``other``'s from one forward pass (and one backward).

        ``other`` must explain the same layer of a model with the same weights (another copy of one load);
        neither method may run the model again (Score-CAM, the guided methods). :meth:`shares_forward` says
        whether it can.
        """
        if not self.shares_forward(other):
            raise LivecamError(f"{other.method.name} at '{other.layer}' cannot share the forward pass of "
                               f"{self.method.name} at '{self.layer}'")
        capture, raw = self._run(x, classes, timer)
        with timer("cam"):
            if other.method.needs_grad:
                capture.gradients()
            theirs = other.method.compute(capture).detach()
        size = (x.shape[-2], x.shape[-1])
        return (self._explanation(x, capture, raw, size, upsample, timer),
                other._explanation(x, capture, theirs, size, upsample, timer))

    def shares_forward(self, other: Explainer) -> bool:
        """Whether :meth:`beside` can explain with ``other``'s method from this explainer's forward pass: the
        same layer and layout, neither method running the model again, and the gradients ``other`` needs
        there (a closed-form head, or this hook's autograd)."""
        same = self.layer == other.layer and self.info.layout == other.info.layout and self.dtype == other.dtype
        again = self.method.needs_input or other.method.needs_input
        return same and not again and (self._autograd or not other._autograd)

    def _explanation(self, x: torch.Tensor, capture: Capture, raw: torch.Tensor, size: tuple[int, int] | None,
                     upsample: bool, timer: Timer, guided: bool = False) -> Explanation:
        """The explanation of a capture: its maps (``raw``, this method's) upsampled and normalized."""
        logits, chosen = capture.logits.detach(), capture.classes
        if guided and capture.detail is None:
            assert capture.inputs is not None, "the explainer's captures hold the inputs they were taken on"
            with timer("guided"):
                capture.detail = guided_detail(self.module, capture.inputs, chosen, raw)
        with timer("cam"):
            maps = upsample_maps(raw, size or (x.shape[-2], x.shape[-1])) if upsample else raw
            cams = normalize_maps(maps)
        return Explanation(
            cams=cams,
            classes=chosen,
            scores=torch.softmax(logits.float(), dim=1).gather(1, chosen[:, None]).squeeze(1),
            logits=logits,
            raw=raw,
            method=self.method.name,
            layer=self.layer,
            detail=capture.detail,
        )

    def raw_maps(
        self, x: torch.Tensor, classes: ClassSpec = None, timer: Timer = no_timer, check: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The method's maps at the layer's resolution, the logits and the explained classes.

        With ``check=False`` (classes already validated) nothing here waits for
        the device, so the call can be captured in a CUDA graph.
        """
        capture, raw = self._run(x, classes, timer, check)
        return raw, capture.logits.detach(), capture.classes

    def _run(self, x: torch.Tensor, classes: ClassSpec, timer: Timer, check: bool = True,
             topk: int = 1) -> tuple[Capture, torch.Tensor]:
        """One forward pass (and the method's backward, if any): the capture and the raw maps."""
        check_batch(x)
        x = x.detach().to(device=self.device, dtype=self.dtype)
        self.hook.enabled = True
        try:
            with timer("forward"), torch.set_grad_enabled(self._autograd):
                logits = self.module(x)
            activation = self.hook.activation
        finally:
            self.hook.enabled = False
            self.hook.activation = None
        if activation is None:
            raise LivecamError(f"layer '{self.layer}' did not run in the forward pass; pick another with "
                               f"{option('layer')}")
        if topk > 1 and classes is None:
            capture = self._topk_capture(x, activation, logits, min(topk, logits.shape[1]), timer)
        else:
            chosen = self._classes(classes, logits, check)
            capture = Capture(activation, logits, chosen, self._head_weight, module=self.module, inputs=x,
                              contrast=self.method.contrast(logits.detach(), chosen))
        if self.method.needs_grad:
            with timer("backward"):
                capture.gradients()
        with timer("cam"):
            raw = self.method.compute(capture).detach()
        return capture, raw

    def _topk_capture(self, x: torch.Tensor, activation: torch.Tensor, logits: torch.Tensor, k: int,
                      timer: Timer) -> Capture:
        """Each sample's k best classes as N * k rows; their gradients from one batched backward pass."""
        n = logits.shape[0]
        top = logits.detach().topk(k, dim=1).indices  # (N, k)
        rows = logits.detach().repeat_interleave(k, 0)
        capture = Capture(activation.detach().repeat_interleave(k, 0), rows, top.reshape(-1), self._head_weight,
                          module=self.module, inputs=x.repeat_interleave(k, 0),
                          contrast=self.method.contrast(rows, top.reshape(-1)))
        if self.method.needs_grad and self._head_weight is None:
            with timer("backward"):
                # cotangents (k, N, classes): row j asks for every sample's j-th class (one-hot), or its contrast
                if capture.contrast is None:
                    cotangents = torch.zeros(k, *logits.shape, dtype=logits.dtype, device=logits.device)
                    cotangents.scatter_(2, top.T[..., None], 1.0)
                else:
                    cotangents = capture.contrast.to(logits.dtype).reshape(n, k, -1).transpose(0, 1)
                (grads,) = torch.autograd.grad(logits, activation, grad_outputs=cotangents, is_grads_batched=True)
                capture._grads = grads.transpose(0, 1).reshape(n * k, *activation.shape[1:])
        return capture

    @staticmethod
    def _classes(classes: ClassSpec, logits: torch.Tensor, check: bool = True) -> torch.Tensor:
        n, k = logits.shape
        if classes is None:
            return logits.detach().argmax(dim=1)
        chosen = torch.as_tensor(classes, dtype=torch.long, device=logits.device).reshape(-1)
        if chosen.numel() == 1:
            chosen = chosen.expand(n)
        if chosen.numel() != n:
            raise LivecamError(f"got {chosen.numel()} classes for a batch of {n}; give one class or one per image")
        if check and bool(((chosen < 0) | (chosen >= k)).any()):
            raise LivecamError(f"class indices must lie in 0 to {k - 1}")
        return chosen

    def remove(self) -> None:
        """Take the hook off the model."""
        self.hook.remove()

    def close(self) -> None:
        """Take the hook off the model (as :meth:`remove`): what leaving a ``with`` block does."""
        self.remove()
