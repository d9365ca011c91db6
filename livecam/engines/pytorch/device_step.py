"""The device-resident step: uint8 frames in, annotated uint8 frames out, on the model's device.

Everything between the upload and the download is torch on one device:
resize, colour conversion and normalization; the explanation (map arithmetic
in float32); the upsampling of the map, the colour map (a 256-entry lookup
table) and the blend. Nothing in :meth:`DeviceStep.step` waits for the device,
so on CUDA the whole step is captured once per input shape in a CUDA graph and
replayed (eager execution when capture fails or ``graph=False``). Frames cross
the bus once each way, through pinned host buffers, the upload on a copy
stream and the download on its own stream.

On the CPU the same operations run eagerly; the tests use that to check this
path against the OpenCV one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from livecam.cams import normalize_maps
from livecam.engines.pytorch.explainer import Explainer
from livecam.render import COLORMAPS
from livecam.timing import Timer, no_timer
from livecam.types import Preprocess

log = logging.getLogger(__name__)


def colormap_lut(name: str) -> np.ndarray:
    """OpenCV's colour map ``name`` as a (256, 3) BGR uint8 lookup table."""
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], COLORMAPS[name])[:, 0].copy()


def preprocess_frames(frames: torch.Tensor, spec: Preprocess, mean: torch.Tensor, std: torch.Tensor,
                      dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    """(N, H, W, 3) BGR uint8 on the device -> the model's normalized (N, 3, h, w) input.

    Antialiased bilinear resizing of the whole frame (as the OpenCV path's area
    averaging, no crop), BGR -> RGB, (x / 255 - mean) / std.
    """
    # flip, not an index list: a list index would be copied to the device, which a CUDA graph cannot capture
    x = frames.permute(0, 3, 1, 2).flip(1).float()
    x = F.interpolate(x, size=spec.size, mode="bilinear", antialias=True, align_corners=False)
    x = (x * (1.0 / 255.0) - mean) / std
    return x.to(dtype=dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def overlay_frames(frames: torch.Tensor, cams: torch.Tensor, lut: torch.Tensor, alpha: float) -> torch.Tensor:
    """Blend the coloured maps over the frames: (N, H, W, 3) uint8 and (N, h, w) in [0, 1] -> uint8."""
    height, width = frames.shape[1:3]
    up = F.interpolate(cams[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    heat = lut[(up * 255.0).round_().clamp_(0, 255).long()]  # (N, H, W, 3)
    blended = frames.float() * (1.0 - alpha) + heat.float() * alpha
    return blended.round_().clamp_(0, 255).to(torch.uint8)


def side_stream(device: torch.device) -> torch.cuda.Stream:
    """A new CUDA stream on ``device``, for work beside the default stream (warm-up, copies)."""
    return torch.cuda.Stream(device)  # type: ignore[no-untyped-call]  # torch's Stream.__new__ has no annotations


@dataclass
class StepOutput:
    images: torch.Tensor  # (N, H, W, 3) uint8, annotated but for the labels
    cams: torch.Tensor  # (N, h, w) float32 in [0, 1], at the layer's resolution
    classes: torch.Tensor  # (N,)
    scores: torch.Tensor  # (N,) softmax probabilities of the explained classes
    logits: torch.Tensor  # (N, classes)
    raw: torch.Tensor  # (N, h, w) the method's map before normalization


class DeviceStep:
    """Preprocess, explain and overlay a batch of uint8 frames already on the device."""

    def __init__(self, explainer: Explainer, preprocess: Preprocess, colormap: str, alpha: float,
                 target_class: int | None, channels_last: bool, graph: bool = True) -> None:
        self.explainer = explainer
        self.spec = preprocess
        device = explainer.device
        self.device = device
        self.mean = torch.tensor(preprocess.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocess.std, device=device).view(1, 3, 1, 1)
        self.lut = torch.from_numpy(colormap_lut(colormap)).to(device)
        self.alpha = float(alpha)
        self.fixed = None if target_class is None else torch.tensor([target_class], device=device)
        self.channels_last = channels_last
        self.graph = graph and device.type == "cuda"
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, StepOutput] | None] = {}

    def step(self, frames: torch.Tensor, timer: Timer = no_timer) -> StepOutput:
        """The whole step, eagerly; nothing here synchronizes with the host."""
        with timer("preprocess"):
            x = preprocess_frames(frames, self.spec, self.mean, self.std, self.explainer.dtype, self.channels_last)
        raw, logits, classes = self.explainer.raw_maps(x, self.fixed, timer, check=False)
        with timer("cam"):
            cams = normalize_maps(raw)
            scores = torch.softmax(logits.float(), dim=1).gather(1, classes[:, None]).squeeze(1)
        with timer("render"):
            images = overlay_frames(frames, cams, self.lut, self.alpha)
        return StepOutput(images, cams, classes, scores, logits, raw)

    def _capture(self, example: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, StepOutput] | None:
        static_in = example.clone()
        try:
            side = side_stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm up off the default stream, as capture requires
                for _ in range(3):
                    self.step(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self.step(static_in)
            graph.replay()
            return graph, static_in, outputs
        except Exception as exc:  # noqa: BLE001 - any capture failure means: run eagerly
            log.warning("CUDA graph capture failed for input %s (%s); running eagerly", tuple(example.shape), exc)
            return None

    def __call__(self, frames: torch.Tensor) -> StepOutput:
        """The step on ``frames``; outputs stay valid until the next call (clone to keep them)."""
        if not self.graph:
            return self.step(frames)
        key = tuple(frames.shape)
        if key not in self._graphs:
            self._graphs[key] = self._capture(frames)
        captured = self._graphs[key]
        if captured is None:
            return self.step(frames)
        graph, static_in, outputs = captured
        static_in.copy_(frames)
        graph.replay()
        return outputs


class HostTransfer:
    """Pinned host buffers and side streams for the upload and the download (CUDA only)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.upload_stream = side_stream(device)
        self.download_stream = side_stream(device)
        self._pinned: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self._device_in: dict[tuple[int, ...], torch.Tensor] = {}

    def _buffer(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        key = (kind, shape)
        if key not in self._pinned:
            self._pinned[key] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return self._pinned[key]

    def upload(self, images: list[np.ndarray]) -> torch.Tensor:
        """Frames -> a (N, H, W, 3) uint8 device tensor; the compute stream waits for the copy."""
        shape = (len(images), *images[0].shape)
        host = self._buffer("in", shape)
        host_np = host.numpy()
        for i, image in enumerate(images):
            host_np[i] = image
        if shape not in self._device_in:
            self._device_in[shape] = torch.empty(shape, dtype=torch.uint8, device=self.device)
        dev = self._device_in[shape]
        with torch.cuda.stream(self.upload_stream):
            dev.copy_(host, non_blocking=True)
        torch.cuda.current_stream(self.device).wait_stream(self.upload_stream)
        return dev

    def download(self, images: torch.Tensor) -> np.ndarray:
        """(N, H, W, 3) uint8 device tensor -> a host array (a copy, safe to keep)."""
        host = self._buffer("out", tuple(images.shape))
        self.download_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.download_stream):
            host.copy_(images, non_blocking=True)
        self.download_stream.synchronize()
        return host.numpy().copy()
