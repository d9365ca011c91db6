"""How a decision is explained: the CAM family, one small class per method.

``METHODS`` is the one place where a method is registered; the CLI's
``--method`` choices and ``Explainer(method=...)`` both read it.
"""

from __future__ import annotations

from livecam.cams.activation import CAM, EigenCAM
from livecam.cams.base import ActivationHook, Capture, CamMethod, Explanation, normalize_maps, upsample_maps
from livecam.cams.gradient import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM

METHODS: dict[str, type[CamMethod]] = {
    method.name: method
    for method in (GradCAM, CAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, EigenCAM)
}

DEFAULT_METHOD = GradCAM.name

__all__ = [
    "CAM", "METHODS", "DEFAULT_METHOD", "ActivationHook", "Capture", "CamMethod", "EigenCAM", "Explanation",
    "GradCAM", "GradCAMPlusPlus", "HiResCAM", "LayerCAM", "XGradCAM", "normalize_maps", "upsample_maps",
]
