"""Drawing in uint8: colour maps, blending, class labels and the FPS readout.

Everything here works on uint8 BGR images with OpenCV: on a CPU a float32
full-frame overlay at 1080p costs about 26 ms, ``applyColorMap`` and
``addWeighted`` in uint8 about 3.6 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from livecam import choices
from livecam.errors import LivecamError, option
from livecam.preprocess import downscale
from livecam.types import Label

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT,
    "parula": cv2.COLORMAP_PARULA,
    "bone": cv2.COLORMAP_BONE,
}
DEFAULT_COLORMAP = choices.DEFAULT_COLORMAP
FONT = cv2.FONT_HERSHEY_SIMPLEX


def cam_to_uint8(cam: np.ndarray) -> np.ndarray:
    """A map in [0, 1] (any float dtype) to uint8 0..255, rounded; NaN becomes 0."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0)
    return np.clip(np.rint(cam * 255.0), 0, 255).astype(np.uint8)


def heatmap(cam: np.ndarray, size: tuple[int, int], colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Colour a (h, w) map in [0, 1] as a BGR uint8 image of ``size`` = (width, height).

    The map is quantized to uint8 at its own (usually small) resolution and
    upsampled bilinearly in uint8, then coloured through OpenCV's lookup table.
    """
    if colormap not in COLORMAPS:
        raise LivecamError(f"unknown colour map '{colormap}'; choose one of {', '.join(COLORMAPS)}")
    small = cam_to_uint8(cam)
    if (small.shape[1], small.shape[0]) != tuple(size):
        small = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap(small, COLORMAPS[colormap])


def blend(frame: np.ndarray, heat: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) * frame + alpha * heat, in uint8."""
    return cv2.addWeighted(frame, 1.0 - alpha, heat, alpha, 0.0)


def _text_scale(height: int) -> tuple[float, int]:
    scale = max(0.4, height / 720.0 * 0.8)
    return scale, max(1, int(round(scale * 2)))


def draw_text_box(image: np.ndarray, lines: list[str], corner: str = "top-left") -> None:
    """Draw white text lines on a dark box in a corner of ``image`` (top-left, bottom-left, top-right or
    bottom-right), in place."""
    if not lines:
        return
    scale, thick = _text_scale(image.shape[0])
    sizes = [cv2.getTextSize(line, FONT, scale, thick) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + 4
    box_w = max(w for (w, _), _ in sizes) + 12
    box_h = line_h * len(lines) + 6
    x0 = 6 if corner.endswith("left") else max(0, image.shape[1] - box_w - 6)
    y0 = 6 if corner.startswith("top") else max(0, image.shape[0] - box_h - 6)
    x1, y1 = min(image.shape[1], x0 + box_w), min(image.shape[0], y0 + box_h)
    roi = image[y0:y1, x0:x1]
    roi[:] = (roi * 0.35).astype(np.uint8)  # darken, keep a hint of the scene
    for i, line in enumerate(lines):
        y = y0 + 3 + line_h * (i + 1) - 6
        cv2.putText(image, line, (x0 + 6, y), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


class Annotator:
    """Heatmap over the frame, the top classes in a corner and a speed readout."""

    def __init__(self, colormap: str = DEFAULT_COLORMAP, alpha: float = 0.5) -> None:
        if colormap not in COLORMAPS:
            raise LivecamError(f"unknown colour map '{colormap}'; choose one of {', '.join(COLORMAPS)}")
        if not 0.0 <= alpha <= 1.0:
            raise LivecamError(f"{option('alpha')} must lie between 0 and 1, got {alpha}")
        self.colormap = colormap
        self.alpha = alpha

    def annotate(
        self, frame: np.ndarray, cam: np.ndarray, labels: list[Label], readout: str | None = None
    ) -> np.ndarray:
        """A new uint8 image: ``frame`` with ``cam`` blended over it and the text drawn."""
        height, width = frame.shape[:2]
        out = blend(frame, heatmap(cam, (width, height), self.colormap), self.alpha)
        self.label(out, labels, readout)
        return out

    @staticmethod
    def label(image: np.ndarray, labels: list[Label], readout: str | None = None) -> None:
        """Draw the class labels (top left) and the readout (bottom left) on ``image``, in place."""
        draw_text_box(image, [label.text() for label in labels], "top-left")
        if readout:
            draw_text_box(image, [readout], "bottom-left")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 (no overflow for large logits)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    probs: np.ndarray = z / z.sum(axis=-1, keepdims=True)
    return probs


def top_labels(probs: np.ndarray, class_names: list[str], k: int, explained: int | Sequence[int]) -> list[Label]:
    """The k most probable classes of one sample, the explained ones (a class, or each panel's) marked, and
    added after them if they are not among the k."""
    probs = np.asarray(probs)
    shown = [int(explained)] if isinstance(explained, (int, np.integer)) else [int(c) for c in explained]
    order = np.argsort(-probs, kind="stable")[: min(k, probs.size)]
    labels = [Label(class_names[int(i)], float(probs[i]), int(i) in shown, int(i)) for i in order]
    listed = {label.index for label in labels}
    labels.extend(Label(class_names[c], float(probs[c]), True, c) for c in dict.fromkeys(shown) if c not in listed)
    return labels


def panels_image(annotator: Annotator, image: np.ndarray, cams: np.ndarray, names: list[str], scores: list[float],
                 readout: str | None = None) -> np.ndarray:
    """One panel per map (best first), each with its own overlay and label, tiled as wide as ``image``."""
    size = panel_size((image.shape[1], image.shape[0]), len(cams))
    small = downscale(image, size)
    panels = [annotator.annotate(small, cams[j], [Label(f"{j + 1}. {names[j]}", float(scores[j]), True)],
                                 readout if j == 0 else None) for j in range(len(cams))]
    return tile(panels)


def detail_image(detail: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A signed input-space map (3, h, w) in the model's RGB order -> a BGR uint8 image of ``size`` (w, h).

    Shown the usual way for guided backpropagation: centred on mid-grey, one
    tenth of a standard deviation per 0.1 of brightness, clipped.
    """
    d = np.asarray(detail, dtype=np.float32)
    d = (d - d.mean()) / (d.std() + 1e-5) * 0.1 + 0.5
    rgb = cam_to_uint8(np.clip(d, 0.0, 1.0).transpose(1, 2, 0))
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if (bgr.shape[1], bgr.shape[0]) != tuple(size):
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
    return bgr


def grid(n: int) -> tuple[int, int]:
    """(rows, cols) for n panels: as square as possible, filled row by row."""
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def panel_size(frame_size: tuple[int, int], n: int) -> tuple[int, int]:
    """The (w, h) of each of n panels tiled across a frame's width, keeping its aspect."""
    _, cols = grid(n)
    width, height = frame_size
    return max(2, width // cols), max(2, height // cols)


def tile(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of one size in a grid (see ``grid``), row by row; empty cells are black."""
    rows, cols = grid(len(panels))
    h, w = panels[0].shape[:2]
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, panel in enumerate(panels):
        r, c = divmod(i, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = panel
    return out
