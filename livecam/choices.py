"""The names a user chooses from, in one torch-free place that the CLI and the library both read.

The CLI builds its ``--help`` from these without importing PyTorch; the library
checks that its registries match them (``livecam.cams.METHODS``,
``livecam.render.COLORMAPS``; a test keeps them in step).
"""

from __future__ import annotations

# Every explanation method, in the order --help lists them.
METHODS = ("gradcam", "cam", "gradcampp", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam", "guided",
           "guidedgradcam")
DEFAULT_METHOD = "gradcam"
# Methods whose whole explanation fits in one exported graph: the gradient methods for heads of global
# average pooling and one Linear layer (their gradient has a closed form), and Eigen-CAM for any head.
GAP_LINEAR_EXPORT_METHODS = ("cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam")
ANY_HEAD_EXPORT_METHODS = ("eigencam",)
EXPORT_METHODS = GAP_LINEAR_EXPORT_METHODS + ANY_HEAD_EXPORT_METHODS

COLORMAPS = ("jet", "turbo", "inferno", "magma", "plasma", "viridis", "hot", "parula", "bone")
DEFAULT_COLORMAP = "jet"
VIEWS = ("overlay", "guided")
BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
EXPORT_PRECISIONS = ("fp32", "fp16")
DEFAULT_MODEL = "efficientnet_lite0"
