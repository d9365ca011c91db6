"""livecam: a real-time explainer for image classifiers.

The public API::

    import livecam
    model = livecam.load_model("efficientnet_lite0")          # real ImageNet weights, offline
    explainer = livecam.Explainer(model, method="gradcam")     # hooks registered once
    result = explainer(x)                                      # x: normalized (N, 3, H, W)
    result.cams, result.classes, result.scores, result.logits
    result = livecam.explain_frame(bgr_uint8_frame, explainer) # one frame, maps at its size
    livecam.export_onnx(model.module, model.target_layer, path)  # ONNX: (logits, activation)
"""

from __future__ import annotations

__version__ = "0.1.0"

from livecam.cams import METHODS, Explanation  # noqa: E402
from livecam.engine import Annotated, Engine, explain_frame, to_input  # noqa: E402
from livecam.errors import LivecamError  # noqa: E402
from livecam.explainer import Explainer  # noqa: E402
from livecam.onnx_export import export_onnx  # noqa: E402
from livecam.zoo import LoadedModel, load_model  # noqa: E402

__all__ = [
    "METHODS", "Annotated", "Engine", "Explainer", "Explanation", "LivecamError", "LoadedModel",
    "__version__", "explain_frame", "export_onnx", "load_model", "to_input",
]
