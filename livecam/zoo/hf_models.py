"""Hugging Face image classifiers from a folder written by ``save_pretrained`` (``--model FOLDER``); no downloads.

The folder holds ``config.json`` and the weights (``model.safetensors``, or
``pytorch_model.bin``, which is read with ``weights_only=True`` before
transformers sees it, so a pickle that would run code is refused), and may hold
the image processor's ``preprocessor_config.json``. The model is wrapped so
that it takes a batch of images and returns the logits, with the Hugging Face
model's own layer names (``vit.layers.11.layernorm_before``, ``classifier``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from livecam.errors import LivecamError, option
from livecam.types import Preprocess
import livecam.zoo.torchvision_models as tvm

if TYPE_CHECKING:
    from types import ModuleType

SEED = 0  # of an untrained model's initialization
SAFE_FILES = ("model.safetensors", "model.safetensors.index.json")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
DEFAULT_LABEL = re.compile(r"LABEL_\d+")


class HFClassifier(nn.Module):
    """A Hugging Face ``...ForImageClassification`` as a module from images to logits, under the model's own names.

    The Hugging Face model's children (and its own parameters and buffers) are
    registered here under their own names, so ``named_modules()`` and the state
    dict read as the model's; the model itself is kept unregistered and called
    with ``pixel_values=x``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "hf", model)  # not a submodule: its children are ours
        self._adopt()

    hf: nn.Module

    def _adopt(self) -> None:
        model = self.hf
        self._modules.update(model._modules)
        self._parameters.update(model._parameters)
        self._buffers.update(model._buffers)
        self._non_persistent_buffers_set = set(model._non_persistent_buffers_set)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.hf(pixel_values=x).logits
        return logits

    def train(self, mode: bool = True) -> HFClassifier:
        super().train(mode)
        self.hf.train(mode)
        return self

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> HFClassifier:
        self.hf._apply(fn, recurse)  # type: ignore[no-untyped-call]  # the model's own tensors and its children's, then ours point at them again
        self._adopt()
        return self

    def extra_repr(self) -> str:
        return type(self.hf).__name__


def import_transformers() -> ModuleType:
    try:
        import transformers
    except ImportError:
        raise LivecamError("transformers is not installed; pip install 'livecam[hf]'") from None
    return transformers


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` that is no path here: what one passes to ``from_pretrained`` to download."""
    return bool(HUB_ID.fullmatch(name.strip())) and not Path(name.strip()).expanduser().exists()


def hub_id_refusal(name: str) -> LivecamError:
    hub_id = name.strip()
    return LivecamError(
        f"'{hub_id}' is not a folder here, and livecam does not download models from the Hugging Face hub; on a "
        f"machine with internet, save it with AutoModelForImageClassification.from_pretrained('{hub_id}')"
        f".save_pretrained(FOLDER) and AutoImageProcessor.from_pretrained('{hub_id}').save_pretrained(FOLDER), "
        f"then pass that FOLDER as {option('model')}")


def _bin_files(folder: Path) -> Iterator[Path]:
    yield from sorted(folder.glob("pytorch_model*.bin"))


def check_folder(folder: Path, weights: str | None) -> None:
    """Refuse a folder that is not a saved model, and a pickle in it that is not plain tensors, before loading."""
    if not (folder / "config.json").is_file():
        raise LivecamError(f"folder {folder} has no config.json, so it is not a Hugging Face model saved with "
                           "save_pretrained; pass such a folder (config.json and model.safetensors)")
    if weights is not None:
        return  # the folder's weights are not used
    if any((folder / name).is_file() for name in SAFE_FILES):
        return
    bins = list(_bin_files(folder))
    if not bins:
        raise LivecamError(f"folder {folder} has config.json but no model.safetensors or pytorch_model.bin; save the "
                           f"model into it with save_pretrained, or pass {option('weights')} FILE")
    for path in bins:
        tvm.read_state_dict(path)  # weights_only=True: a pickle that runs code is refused here


def _config(transformers: ModuleType, folder: Path) -> Any:
    try:
        return transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - an unknown model_type, a damaged config.json
        raise LivecamError(f"transformers cannot read {folder / 'config.json'} ({type(exc).__name__}: "
                           f"{tvm.first_line(exc)[:160]})") from None


def _build(transformers: ModuleType, folder: Path, config: Any, pretrained: bool) -> nn.Module:
    auto = transformers.AutoModelForImageClassification
    try:
        if pretrained:
            model: nn.Module = auto.from_pretrained(str(folder), local_files_only=True, weights_only=True)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(SEED)
                model = auto.from_config(config)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise LivecamError(f"folder {folder} holds a '{getattr(config, 'model_type', '?')}' model, not an image "
                               "classifier (AutoModelForImageClassification has no class for it)") from None
        raise _load_error(folder, exc) from None
    except Exception as exc:  # noqa: BLE001 - weights that do not fit the config, a damaged file
        raise _load_error(folder, exc) from None
    return model


def _load_error(folder: Path, exc: Exception) -> LivecamError:
    return LivecamError(f"transformers could not load the model in {folder} ({type(exc).__name__}: "
                        f"{tvm.first_line(exc)[:160]})")


def class_names(config: Any) -> list[str] | None:
    """``config.id2label`` by id; None where it holds only the default LABEL_0, LABEL_1, ... names."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    num_labels = int(getattr(config, "num_labels", len(id2label)))
    if sorted(id2label) != list(range(num_labels)) or all(DEFAULT_LABEL.fullmatch(v) for v in id2label.values()):
        return None
    return [id2label[i] for i in range(num_labels)]


def preprocess_of(folder: Path, config: Any) -> Preprocess:
    """Size, mean and std from the folder's preprocessor_config.json; else config.image_size, 0.5 and 0.5."""
    size = _pair(getattr(config, "image_size", 224))
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    path = folder / "preprocessor_config.json"
    if path.is_file():
        try:
            processor = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LivecamError(f"could not read {path} as JSON ({tvm.first_line(exc)[:120]}); save it again with "
                               "the image processor's save_pretrained") from None
        given = processor.get("size")
        if isinstance(given, dict):
            if "height" in given and "width" in given:
                size = (int(given["height"]), int(given["width"]))
            elif "shortest_edge" in given:  # livecam resizes the whole frame: a square of that side
                size = _pair(given["shortest_edge"])
        elif isinstance(given, (int, list, tuple)):
            size = _pair(given)
        if processor.get("do_normalize", True) is False:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        else:
            mean = tvm.three_floats(processor.get("image_mean", mean))
            std = tvm.three_floats(processor.get("image_std", std), "std")
    return Preprocess(size, mean, std)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def load(folder_name: str, weights: str | None) -> tuple[nn.Module, str, Preprocess, list[str] | None]:
    """The folder's classifier, where its weights came from, its preprocessing and class names (None: by default).

    ``weights``: None for the folder's own; ``"random"`` for the folder's architecture untrained (seeded); a
    ``.safetensors`` or state-dict file for the folder's architecture with those weights (keys as in the folder's
    model, ``vit.layers.0...``).
    """
    folder = Path(folder_name).expanduser()
    check_folder(folder, weights)
    transformers = import_transformers()
    config = _config(transformers, folder)
    module = HFClassifier(_build(transformers, folder, config, pretrained=weights is None))
    if weights is None:
        source = f"Hugging Face folder {folder}"
    elif weights == "random":
        source = "untrained (random)"
    else:
        tvm.load_weights(module, tvm.read_state_dict(weights), str(folder), f"file {weights}")
        source = str(weights)
    return module, source, preprocess_of(folder, config), class_names(config)
