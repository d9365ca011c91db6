"""How steady each ``--smooth`` value makes a video's explanations, and what it costs in faithfulness.

Smoothing (:class:`livecam.smooth.Smoother`) depends only on each frame's raw outputs: its
time, its class probabilities, the maps of its K most probable classes at the layer's
resolution, and (for the scene cut) its colours. So the video is explained once
(:func:`explain_video`), and each ``--smooth`` value is a fresh Smoother run over those
outputs offline (:func:`smoothed`): every value sees the same frames and the same model
outputs, and only the smoothing differs.

For each value, :func:`measure` reports the steadiness (:func:`livecam.stability.summarize`:
consecutive maps' correlation, class changes) over every frame, and the deletion and insertion
AUC (:func:`livecam.cams.metrics.deletion_insertion`) of the smoothed maps, for the class they
are shown for, on a few frames spread over the video (each costs two curves of forward passes).
``livecam evaluate --stability`` prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from livecam.cams.base import upsample_maps
from livecam.cams.metrics import deletion_insertion
from livecam.smooth import HISTOGRAM_SIZE, Smoother
from livecam.stability import Stability, summarize
from livecam.types import Frame
from livecam.zoo import LoadedModel


@dataclass
class VideoOutputs:
    """A video's frames as explained once, before any smoothing."""

    timestamps: list[float] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)  # (C,) float32 softmax probabilities per frame
    maps: list[np.ndarray] = field(default_factory=list)  # (K, h, w) float32 in [0, 1], the K best classes
    classes: list[list[int]] = field(default_factory=list)  # the K best classes, best first
    thumbnails: list[np.ndarray] = field(default_factory=list)  # what the scene-cut test reads (see thumbnail)
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)  # (1, 3, H, W) of the frames kept for the AUC
    layer: str = ""  # the layer the maps are taken at

    def __len__(self) -> int:
        return len(self.timestamps)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The frame shrunk as :func:`livecam.smooth.histogram` shrinks it, so its histogram is the frame's own
    (the resize to the same size is a copy) and the frames need not all be kept."""
    h, w = image.shape[:2]
    size = (HISTOGRAM_SIZE, max(1, round(h * HISTOGRAM_SIZE / max(w, 1))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def explain_video(model: LoadedModel, frames: Iterable[Frame], method: str = "gradcam", layer: str | None = None,
                  topk: int = 3, keep: Iterable[int] = (), batch: int = 8) -> VideoOutputs:
    """Explain every frame once, for its ``topk`` most probable classes; maps stay at the layer's resolution.

    ``keep``: the indices (in order of arrival) of the frames whose model input is kept for the AUC.
    """
    from livecam.engines.pytorch.engine import to_input
    from livecam.engines.pytorch.explainer import Explainer

    wanted = set(keep)
    out = VideoOutputs()
    pending: list[Frame] = []
    with Explainer(model, method, layer=layer) as explainer:
        out.layer = explainer.layer

        def flush() -> None:
            images = [f.image for f in pending]
            x = to_input(images, model.preprocess, model.device)
            k = min(topk, len(model.class_names))
            result = explainer(x, upsample=False, topk=k)
            cams = result.cams.reshape(len(images), k, *result.cams.shape[-2:]).float().cpu().numpy()
            chosen = result.classes.reshape(len(images), k).cpu().numpy()
            probs = torch.softmax(result.logits.float(), dim=1).cpu().numpy()[::k]  # the logits are repeated K times
            for i, frame in enumerate(pending):
                n = len(out)
                out.timestamps.append(float(frame.timestamp))
                out.probs.append(probs[i].astype(np.float32))
                out.maps.append(cams[i].astype(np.float32))
                out.classes.append([int(c) for c in chosen[i]])
                out.thumbnails.append(thumbnail(frame.image))
                if n in wanted:
                    out.inputs[n] = x[i:i + 1].clone()
            pending.clear()

        for frame in frames:
            pending.append(frame)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    return out


def smoothed(outputs: VideoOutputs, seconds: float) -> tuple[list[np.ndarray], list[int]]:
    """Each frame's map to draw (h, w) and the class it is shown for, through a fresh Smoother of ``seconds``."""
    smoother = Smoother(seconds)
    maps, classes = [], []
    for t, p, m, c, image in zip(outputs.timestamps, outputs.probs, outputs.maps, outputs.classes,
                                 outputs.thumbnails, strict=True):
        steady = smoother.step(t, p, m, c, image)
        maps.append(steady.maps[0])
        classes.append(steady.classes[0])
    return maps, classes


def measure(model: LoadedModel, outputs: VideoOutputs, values: Sequence[float], steps: int = 32) -> list[Stability]:
    """One row per ``--smooth`` value: the steadiness over every frame, the AUC over the kept frames."""
    rows = []
    cache: dict[tuple[int, int, bytes], tuple[float, float]] = {}  # the same map and class: the same curves
    for seconds in values:
        maps, classes = smoothed(outputs, seconds)
        row = summarize(seconds, maps, classes, [c[0] for c in outputs.classes])
        curves = []
        for i, x in sorted(outputs.inputs.items()):
            key = (i, classes[i], maps[i].tobytes())
            if key not in cache:
                saliency = upsample_maps(torch.from_numpy(maps[i])[None].to(x.device), (x.shape[-2], x.shape[-1]))[0]
                deletion, insertion, _, _ = deletion_insertion(model.module, x, saliency, classes[i], steps)
                cache[key] = (deletion, insertion)
            curves.append(cache[key])
        if curves:
            row = replace(row, deletion_auc=float(np.mean([c[0] for c in curves])),
                          insertion_auc=float(np.mean([c[1] for c in curves])), auc_frames=len(curves))
        rows.append(row)
    return rows
