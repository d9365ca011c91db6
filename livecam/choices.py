"""The names a user chooses from, in one torch-free place that the CLI and the library both read.

The CLI builds its ``--help`` from these without importing PyTorch; the library
checks that its registries match them (``livecam.cams.METHODS``,
``livecam.render.COLORMAPS``; a test keeps them in step).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from livecam.errors import LivecamError

# Every explanation method, in the order --help lists them.
METHODS = ("gradcam", "cam", "gradcampp", "xgradcam", "layercam", "hirescam", "counterfactual", "finercam", "eigencam",
           "scorecam", "guided", "guidedgradcam")
DEFAULT_METHOD = "gradcam"
# Methods whose whole explanation fits in one exported graph: the gradient methods for heads of global
# average pooling and one Linear layer (their gradient has a closed form), and Eigen-CAM for any head.
GAP_LINEAR_EXPORT_METHODS = ("cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam", "counterfactual",
                             "finercam")
ANY_HEAD_EXPORT_METHODS = ("eigencam",)
FINER_REFERENCES = 3  # Finer-CAM compares the class with this many classes whose logits lie nearest its own
EXPORT_METHODS = GAP_LINEAR_EXPORT_METHODS + ANY_HEAD_EXPORT_METHODS

COLORMAPS = ("jet", "turbo", "inferno", "magma", "plasma", "viridis", "hot", "parula", "bone")
DEFAULT_COLORMAP = "jet"
VIEWS = ("overlay", "guided")
BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
EXPORT_PRECISIONS = ("fp32", "fp16")
DEFAULT_MODEL = "efficientnet_lite0"
MAX_TOPK = 10  # classes labelled, explained or tiled as panels per frame: more are unreadable
RECORDING_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")  # what --output records (livecam.sinks.encode.DEFAULT_CODEC)
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")  # what matplotlib writes for --plot
LITE_NAMES = ("efficientnet_lite0", "efficientnet-lite0")
TIMM_PREFIX = "timm:"  # --model timm:NAME
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def factory_spec(spec: str) -> tuple[str, str] | None:
    """(where, function) for ``file.py:function`` or ``package.module:function``; None for anything else
    (``timm:NAME`` among them)."""
    if spec.strip().lower().startswith(TIMM_PREFIX):
        return None
    where, sep, function = spec.strip().rpartition(":")
    if not sep or not IDENTIFIER.fullmatch(function):
        return None
    if where.lower().endswith(".py") or DOTTED.fullmatch(where):
        return where, function
    return None


def canonical_model(name: str) -> str:
    """A zoo name as livecam spells it: lower case, ``efficientnet-lite0`` as ``efficientnet_lite0``."""
    key = name.strip().lower()
    return DEFAULT_MODEL if key in LITE_NAMES else key


def suggest(name: str, options: list[str], n: int = 3) -> str:
    """' (did you mean a, b?)' for a near miss, else ''."""
    close = difflib.get_close_matches(name, options, n=n, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def export_methods(value: str | Sequence[str]) -> tuple[str, ...]:
    """The methods of one exported graph: ``"gradcam"``, ``"gradcam,cam,eigencam"`` or a sequence of names.

    The first is the graph's own (its ``cams`` output); the others get outputs of their own. Names are
    stripped and lower-cased; an unknown name, a repeated one or none at all is a one-line LivecamError.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(part).strip().lower() for part in parts if str(part).strip())
    if not names:
        raise LivecamError(f"name at least one method: one of {', '.join(EXPORT_METHODS)}, or several joined by "
                           "commas (gradcam,cam,eigencam)")
    for name in names:
        if name not in METHODS:
            raise LivecamError(f"unknown method '{name}'{suggest(name, list(EXPORT_METHODS))}; the methods that "
                               f"export are {', '.join(EXPORT_METHODS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LivecamError(f"{', '.join(repeated)} is named twice; name each method once")
    return names


def resolve_class(value: str | int, class_names: list[str] | tuple[str, ...]) -> int:
    """A class index from an index or a (case-insensitive) class name."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(class_names):
            raise LivecamError(
                f"class index {index} is out of range: the model has classes 0 to {len(class_names) - 1}"
            )
        return index
    lowered = [n.lower() for n in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise LivecamError(
        f"unknown class '{text}'{suggest(text.lower(), lowered)}; give a class name of the model "
        "(e.g. 'tabby', 'espresso' for ImageNet) or an index 0-" + str(len(class_names) - 1)
    )
