"""How a decision is explained: the CAM family, one small class per method.

``METHODS`` is the one place where a method is registered; the CLI's
``--method`` choices and ``Explainer(method=...)`` both read it.
"""

from __future__ import annotations

from livecam.cams.activation import CAM
from livecam.cams.base import ActivationHook, Capture, CamMethod, Explanation, normalize_maps, upsample_maps
from livecam.cams.gradient import GradCAM

METHODS: dict[str, type[CamMethod]] = {
    GradCAM.name: GradCAM,
    CAM.name: CAM,
}

DEFAULT_METHOD = GradCAM.name

__all__ = [
    "CAM", "METHODS", "DEFAULT_METHOD", "ActivationHook", "Capture", "CamMethod", "Explanation", "GradCAM",
    "normalize_maps", "upsample_maps",
]
