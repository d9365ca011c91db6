"""torchvision's classification models by name, and loading weights from files.

Nothing here downloads at import or in tests: torchvision's default weights are
read from the torch hub cache, and downloaded only when they are missing there
and the user asked for them (a clear error otherwise).
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import nn

from livecam.errors import LivecamError, option
from livecam.paths import check_weights_file

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

DOWNLOAD_TIMEOUT_S = 30.0


def torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, from torchvision's weight metadata (offline)."""
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def default_class_names(num_classes: int) -> list[str]:
    """A head's class names when its model names none: ImageNet's for 1000 classes, else the indices as text."""
    return imagenet_categories() if num_classes == 1000 else [str(i) for i in range(num_classes)]


def three_floats(values: Any, what: str = "mean") -> tuple[float, float, float]:
    """A per-channel (R, G, B) value from three numbers or one (the same for each channel)."""
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    try:
        floats = [float(x) for x in items]
    except (TypeError, ValueError):
        floats = []
    if len(floats) not in (1, 3):
        raise LivecamError(f"the model's {what} {values!r} is not one number or three (R, G, B)")
    return (floats[0], floats[0], floats[0]) if len(floats) == 1 else (floats[0], floats[1], floats[2])


def default_weights(name: str) -> WeightsEnum:
    """torchvision's default ``WeightsEnum`` member for ``name``."""
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def build(name: str) -> nn.Module:
    """An untrained torchvision model (no download)."""
    import torchvision

    with warnings.catch_warnings():  # googlenet and inception_v3 warn about their init scheme
        warnings.simplefilter("ignore", FutureWarning)
        model: nn.Module = torchvision.models.get_model(name, weights=None)
    return model


def cached_weights_path(name: str) -> Path:
    """Where torch.hub keeps torchvision's default weights for ``name``."""
    url: str = default_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def default_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's default weights for ``name``: from the cache, else downloaded."""
    cached = cached_weights_path(name)
    if cached.is_file():
        return read_state_dict(cached)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(
            default_weights(name).url, progress=False, map_location="cpu", weights_only=True
        )
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LivecamError(
            f"torchvision's weights for '{name}' are not cached at {cached} and could not be downloaded "
            f"({reason}); copy them there, pass {option('weights')} FILE (a state dict), "
            f"or {option('weights')} random for an untrained model"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file's tensors (no pickle, so nothing in it runs)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise LivecamError(f"reading {path.name} needs the safetensors package: 'pip install safetensors'") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
        raise LivecamError(f"could not read weights file {path} as safetensors ({first_line(exc)[:160]}); "
                           "save one with safetensors.torch.save_file(model.state_dict(), path)") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or one saved with ``torch.save`` (loaded with ``weights_only=True``).

    Accepts a bare state dict, a checkpoint holding one under ``state_dict`` or
    ``model``, and the ``module.`` prefix that DataParallel adds.
    """
    path = Path(path)
    check_weights_file(path)
    if path.suffix.lower() == ".safetensors":
        obj: object = read_safetensors(path)
    else:
        obj = _torch_load(path)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LivecamError(
            f"weights file {path} holds a {type(obj).__name__}, not a state dict of tensors; "
            "save one with torch.save(model.state_dict(), path)"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, not a torch file, or pickled code
        raise LivecamError(
            f"could not read weights file {path} as a state dict ({first_line(exc)[:160]}); "
            "save one with torch.save(model.state_dict(), path)"
        ) from None


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], model_name: str, source: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error that says what does not fit."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if reshaped:
            k = reshaped[0]
            parts.append(
                f"{len(reshaped)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                f"{tuple(own[k].shape)} in the model)"
            )
        raise LivecamError(
            f"weights {source} do not fit model '{model_name}': {', '.join(parts)}; "
            f"pass weights saved from this architecture or pick the matching {option('model')}"
        )
    module.load_state_dict(state, strict=True)
