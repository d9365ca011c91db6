"""How a decision is explained: the CAM family, one small class per method.

``METHODS`` is the one place where a method is registered; the CLI's
``--method`` choices and ``Explainer(method=...)`` both read it.
"""

from __future__ import annotations

from livecam.cams.activation import CAM, EigenCAM, ScoreCAM
from livecam.cams.base import ActivationHook, Capture, CamMethod, Explanation, normalize_maps, upsample_maps
from livecam.cams.gradient import (CounterfactualGradCAM, FinerCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM,
                                   XGradCAM)
from livecam.cams.guided import GuidedBackprop, GuidedGradCAM

METHODS: dict[str, type[CamMethod]] = {
    method.name: method
    for method in (GradCAM, CAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, CounterfactualGradCAM, FinerCAM,
                   EigenCAM, ScoreCAM, GuidedBackprop, GuidedGradCAM)
}

DEFAULT_METHOD = GradCAM.name

__all__ = [
    "CAM", "METHODS", "DEFAULT_METHOD", "ActivationHook", "Capture", "CamMethod", "CounterfactualGradCAM", "EigenCAM",
    "Explanation", "FinerCAM", "GradCAM", "GradCAMPlusPlus", "GuidedBackprop", "GuidedGradCAM", "HiResCAM", "LayerCAM",
    "ScoreCAM", "XGradCAM", "normalize_maps", "upsample_maps",
]
