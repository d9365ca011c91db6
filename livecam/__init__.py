"""livecam: a real-time explainer for image classifiers.

The public API::

    import livecam
    model = livecam.load_model("efficientnet_lite0")          # real ImageNet weights, offline
    explainer = livecam.Explainer(model, method="gradcam")     # hooks registered once
    result = explainer(x)                                      # x: normalized (N, 3, H, W)
    result.cams, result.classes, result.scores, result.logits
    result = livecam.explain_frame(bgr_uint8_frame, explainer) # one frame, maps at its size
    livecam.export_explainer(model, path)                      # ONNX: logits, classes, scores, maps
    engine = livecam.RuntimeEngine(path)                       # ONNX Runtime alone: frames in, annotated out
    engine = livecam.TorchEngine(model, method="scorecam")     # PyTorch: every method (livecam.Engine: the same)

Names load lazily (a module-level ``__getattr__``): ``import livecam`` imports
no PyTorch, so the command line's ``--help`` and the ONNX Runtime engine start
quickly, and run where PyTorch is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "METHODS": "livecam.cams",
    "Explanation": "livecam.cams",
    "Annotated": "livecam.types",
    "Frame": "livecam.types",
    "Engine": "livecam.engines.pytorch.engine",  # the PyTorch engine's old name; the contract: engines.base.Engine
    "TorchEngine": "livecam.engines.pytorch.engine",
    "explain_frame": "livecam.engines.pytorch.engine",
    "to_input": "livecam.engines.pytorch.engine",
    "LivecamError": "livecam.errors",
    "Explainer": "livecam.engines.pytorch.explainer",
    "export_onnx": "livecam.export.activation",
    "export_explainer": "livecam.export",
    "RuntimeEngine": "livecam.engines.runtime.engine",
    "LoadedModel": "livecam.zoo",
    "load_model": "livecam.zoo",
}

__all__ = [
    "METHODS", "Annotated", "Engine", "Explainer", "Explanation", "Frame", "LivecamError", "LoadedModel",
    "RuntimeEngine", "TorchEngine", "__version__", "explain_frame", "export_explainer", "export_onnx", "load_model",
    "to_input",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from livecam.cams import METHODS, Explanation
    from livecam.engines.pytorch.engine import Engine, TorchEngine, explain_frame, to_input
    from livecam.errors import LivecamError
    from livecam.engines.pytorch.explainer import Explainer
    from livecam.export import export_explainer
    from livecam.export.activation import export_onnx
    from livecam.engines.runtime.engine import RuntimeEngine
    from livecam.types import Annotated, Frame
    from livecam.zoo import LoadedModel, load_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'livecam' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
