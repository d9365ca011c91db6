"""timm's models by name (``timm:NAME``): weights from a file, seeded random, or timm's own where they are cached.

Nothing here downloads: timm's pretrained weights are used only when the
Hugging Face hub cache or the torch hub cache already holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import nn

from livecam.choices import TIMM_PREFIX, suggest
from livecam.errors import LivecamError, option
from livecam.paths import HF_WEIGHTS_FILES
from livecam.types import Preprocess
import livecam.zoo.torchvision_models as tvm

if TYPE_CHECKING:
    from types import ModuleType

PREFIX = TIMM_PREFIX
SEED = 0  # of an untrained model's initialization


def import_timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise LivecamError("timm is not installed; pip install 'livecam[timm]'") from None
    return timm


def check_name(timm: ModuleType, name: str) -> None:
    """Refuse a name timm does not know, suggesting close ones."""
    arch = name.split(".", 1)[0]
    if not arch or not timm.is_model(arch):
        raise LivecamError(f"timm has no model '{name}'{suggest(arch, list(timm.list_models()))}; "
                           "list them with python -c 'import timm; print(timm.list_models())'")


def create(timm: ModuleType, name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs)``, its failures one line."""
    try:
        model: nn.Module = timm.create_model(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - an unknown tag, a bad num_classes, a damaged cached file
        raise LivecamError(f"timm could not build '{name}' ({type(exc).__name__}: {tvm.first_line(exc)[:160]})") \
            from None
    return model


def pretrained_cfg(timm: ModuleType, name: str) -> dict[str, Any]:
    """The model's pretrained config (where its weights live, its preprocessing, its classifier's name), unbuilt."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception as exc:  # noqa: BLE001 - an unknown tag: RuntimeError("Invalid pretrained tag ...")
        raise LivecamError(f"timm cannot make '{name}': {tvm.first_line(exc)[:160]}; "
                           "list its tags with python -c 'import timm; print(timm.list_models(pretrained=True))'") \
            from None
    return dict(cfg.to_dict()) if cfg is not None else {}


def classifier_classes(state: dict[str, torch.Tensor], cfg: dict[str, Any]) -> int | None:
    """The number of classes of the head in ``state``: the rows of the cfg's classifier weight."""
    names = cfg.get("classifier") or ()
    for classifier in (names,) if isinstance(names, str) else names:
        weight = state.get(f"{classifier}.weight")
        if weight is not None and weight.dim() >= 1:
            return int(weight.shape[0])
    return None


def cached_pretrained(cfg: dict[str, Any]) -> tuple[Path, bool] | None:
    """The cached file of timm's pretrained weights and whether it is from the Hugging Face hub; None if absent."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        files = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else HF_WEIGHTS_FILES
        for filename in files:
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                return Path(found), True
    url = cfg.get("url")
    if url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if cached.is_file():
            return cached, False
    return None


def preprocess_of(timm: ModuleType, model: nn.Module) -> Preprocess:
    """The model's input size, mean and std (livecam resizes the whole frame, so no crop)."""
    config = timm.data.resolve_model_data_config(model)
    _, height, width = config["input_size"]
    mean, std = tvm.three_floats(config["mean"]), tvm.three_floats(config["std"], "std")
    return Preprocess((int(height), int(width)), mean, std)


def class_names(timm: ModuleType, cfg: dict[str, Any], num_classes: int) -> list[str]:
    """The cfg's label names; an ImageNet subset's (21k, 22k, ...) when the head is the pretrained one; else default."""
    labels = cfg.get("label_names")
    if labels is not None and len(labels) == num_classes:
        return [str(x) for x in labels]
    if num_classes != 1000 and num_classes == cfg.get("num_classes"):
        subset = timm.data.infer_imagenet_subset(cfg)
        if subset:
            try:
                info = timm.data.ImageNetInfo(subset)
                descriptions = [str(d).split(",")[0] for d in info.label_descriptions()]
            except Exception:  # noqa: BLE001 - a subset without label files in this timm
                descriptions = []
            if len(descriptions) == num_classes:
                return descriptions
    return tvm.default_class_names(num_classes)


def load(name: str, weights: str | None) -> tuple[nn.Module, str, Preprocess, list[str] | None]:
    """``timm:NAME``'s module, where its weights came from, its preprocessing and class names (None: by default)."""
    timm = import_timm()
    name = name.strip().lower()
    check_name(timm, name)
    cfg = pretrained_cfg(timm, name)
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            module = create(timm, name, pretrained=False)
        source = "untrained (random)"
    elif weights is None:
        found = cached_pretrained(cfg)
        if found is None:
            where = cfg.get("hf_hub_id") or cfg.get("url") or "nowhere"
            raise LivecamError(
                f"timm's pretrained weights for '{name}' ({where}) are not in the Hugging Face or torch hub cache, "
                f"and livecam does not download; pass {option('weights')} FILE (a .safetensors or state-dict file) "
                f"or {option('weights')} random for an untrained model")
        path, from_hf = found
        overlay: dict[str, Any] = {"file": str(path)}
        if from_hf:
            overlay["custom_load"] = False  # the hub's files are state dicts, whatever the original url was
        module = create(timm, name, pretrained=True, pretrained_cfg_overlay=overlay)
        source = f"timm {cfg.get('hf_hub_id') or cfg.get('url')} (cached at {path})"
    else:
        state = tvm.read_state_dict(weights)
        classes = classifier_classes(state, cfg)
        extra = {} if classes is None else {"num_classes": classes}
        module = create(timm, name, pretrained=False, **extra)
        tvm.load_weights(module, state, f"{PREFIX}{name}", f"file {weights}")
        source = str(weights)
    num_classes = getattr(module, "num_classes", None)
    names = class_names(timm, cfg, num_classes) if isinstance(num_classes, int) and num_classes > 0 else None
    return module, source, preprocess_of(timm, module), names
