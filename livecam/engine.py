"""The per-frame step: preprocess -> explain -> render.

This is the eager step that works on any device. The device-resident engine
(pinned buffers, CUDA graphs, streams, half precision) replaces the inside of
:meth:`Engine.process` and keeps its contract: a :class:`Frame` in, an
:class:`Annotated` out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from livecam.cams import Explanation
from livecam.explainer import ClassSpec, Explainer
from livecam.render import Annotator, Label
from livecam.sources import Frame
from livecam.zoo import LoadedModel, Preprocess


@dataclass
class Annotated:
    """An output frame: the annotated image, the explanation and where the time went."""

    image: np.ndarray  # BGR uint8, the source frame's size
    explanation: Explanation
    frame: Frame
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def to_input(
    images: np.ndarray | list[np.ndarray], spec: Preprocess, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """BGR uint8 frames -> the model's normalized float batch (N, 3, H, W).

    Each whole frame is resized to the model's input size (area interpolation,
    no crop, so the map covers the whole frame), turned to RGB and normalized
    with the model's mean and std.
    """
    batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
    height, width = spec.size
    resized = np.stack([cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA) for img in batch])
    rgb = resized[..., ::-1].astype(np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32) * 255.0)
    x = (rgb - mean) * inv_std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)


def explain_frame(frame: np.ndarray, explainer: Explainer, classes: ClassSpec = None) -> Explanation:
    """Explain one BGR uint8 frame; ``cams`` come back at the frame's size."""
    x = to_input(frame, explainer.preprocess, explainer.device)
    return explainer(x, classes=classes, size=frame.shape[:2])


def top_labels(explanation: Explanation, class_names: list[str], k: int) -> list[Label]:
    """The k most probable classes of the first sample, the explained one marked (and added if missing)."""
    probs = torch.softmax(explanation.logits[0].float(), dim=0)
    scores, indices = probs.topk(min(k, probs.numel()))
    explained = int(explanation.classes[0])
    pairs = zip(scores.tolist(), indices.tolist(), strict=True)
    labels = [Label(class_names[i], float(s), i == explained) for s, i in pairs]
    if not any(label.explained for label in labels):
        labels.append(Label(class_names[explained], float(probs[explained]), True))
    return labels


class Engine:
    """Turn frames into annotated frames with one model, method and class choice."""

    def __init__(
        self,
        model: LoadedModel,
        method: str = "gradcam",
        layer: str | None = None,
        target_class: int | None = None,
        topk: int = 3,
        annotator: Annotator | None = None,
    ) -> None:
        self.model = model
        self.explainer = Explainer(model, method=method, layer=layer)
        self.target_class = target_class
        self.topk = topk
        self.annotator = annotator or Annotator()

    def process(self, frame: Frame, readout: str | None = None) -> Annotated:
        t0 = time.perf_counter()
        x = to_input(frame.image, self.model.preprocess, self.model.device)
        t1 = time.perf_counter()
        explanation = self.explainer(x, classes=self.target_class, upsample=False)
        cam = explanation.cams[0].cpu().numpy()
        t2 = time.perf_counter()
        labels = top_labels(explanation, self.model.class_names, self.topk)
        image = self.annotator.annotate(frame.image, cam, labels, readout)
        t3 = time.perf_counter()
        return Annotated(image, explanation, frame, {"preprocess": t1 - t0, "explain": t2 - t1, "render": t3 - t2})

    def close(self) -> None:
        self.explainer.remove()
