"""The PyTorch side of ``livecam bench``: the PyTorch engine's stages and floor, and the pytorch-grad-cam peer.

Kept apart from :mod:`livecam.bench` so that benchmarking an exported graph on
ONNX Runtime needs no PyTorch: :mod:`livecam.bench.runs` imports this module only
when the PyTorch engine or the peer runs.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from livecam.bench.report import Stat, TargetConfig
from livecam.engines.launch import EngineOptions
from livecam.engines.pytorch.device_step import DeviceStep, side_stream
from livecam.engines.pytorch.engine import TorchEngine
from livecam.timing import StageTimer
from livecam.types import Frame
from livecam.zoo import LoadedModel, load_model

log = logging.getLogger(__name__)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TorchTarget:
    """What the benchmark times on the PyTorch engine, each as a whole call returning its wall time.

    ``explanation(i)`` is the explainer's call on chunk ``i``'s prepared input (forward, backward where the
    method has one, the maps), as the engine calls it; ``floor(i)`` is plain inference of the same model on the
    same input, graphed on CUDA where the engine is. Both synchronize with the device around the call.
    """

    def __init__(self, engine: TorchEngine, chunks: list[list[np.ndarray]], graph: bool) -> None:
        self.engine = engine
        model = engine.model
        self.model_name = model.name
        self.module, self.device = model.module, model.device
        self.device_step: DeviceStep | None = engine.device_step
        self.inputs = [engine.prepare(c).to(engine.dtype) for c in chunks[:64]]
        self.stage_order: tuple[str, ...] = (
            ("upload", "preprocess", "forward", "backward", "cam", "render", "download") if self.device_step
            else ("preprocess", "forward", "backward", "cam", "guided", "render"))
        self.floor_graph: torch.cuda.CUDAGraph | None = None
        self.static = self.inputs[0]
        if graph and self.device.type == "cuda":
            self.static = self.inputs[0].clone()
            side = side_stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):
                    self.module(self.static)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.floor_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.floor_graph), torch.inference_mode():
                self.module(self.static)

    def _timed(self, fn: Callable[[], object]) -> float:
        _sync(self.device)
        start = time.perf_counter()
        fn()
        _sync(self.device)
        return time.perf_counter() - start

    def floor(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        if self.floor_graph is not None:
            self.static.copy_(x)
            return self._timed(self.floor_graph.replay)

        def plain() -> None:
            with torch.inference_mode():
                self.module(x)

        return self._timed(plain)

    def explanation(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        return self._timed(lambda: self.engine.run_prepared(x))

    def stages(self, chunk: list[np.ndarray]) -> dict[str, float]:
        """One step, stage by stage, synchronized around each stage: seconds per stage for the chunk."""
        engine = self.engine
        timer = StageTimer((lambda: _sync(self.device)) if self.device.type == "cuda" else None)
        step = self.device_step
        if step is not None:  # eager and synchronized per stage (the graphed step is timed whole elsewhere)
            with timer("upload"):
                dev = engine.upload(chunk)
            out = step.step(dev, timer)
            with timer("download"):
                engine.download(out.images)
        else:
            explanation = engine.explain(chunk, timer)
            with timer("render"):
                for j, image in enumerate(chunk):
                    engine.render(Frame(image, j, 0.0), explanation, j)
        return {stage: sum(times) for stage, times in timer.times.items()}

    def step(self, frames: list[Frame]) -> float:
        return self._timed(lambda: self.engine.process_batch(frames))

    def config(self) -> TargetConfig:
        engine = self.engine
        return {"engine": "torch", "runtime": f"PyTorch {torch.__version__} on {engine.model.device}",
                "precision": str(engine.dtype)[6:],
                "graph": engine.device_step is not None and engine.device_step.graph,
                "folded_batchnorms": engine.folded, "layer": engine.explainer.layer,
                "input_size": list(engine.model.preprocess.size)}

    def device_memory_mb(self) -> dict[str, float]:
        if self.device.type != "cuda":
            return {}
        return {"peak allocated": torch.cuda.max_memory_allocated(self.device) / 1e6,
                "allocated at end": torch.cuda.memory_allocated(self.device) / 1e6}

    def device_name(self) -> str | None:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None


def time_peer(model: LoadedModel, layer: str, frames: list[np.ndarray], warmup: int) -> list[float] | None:
    """pytorch-grad-cam's GradCAM + show_cam_on_image on each frame, as its README shows: seconds per frame."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.image import show_cam_on_image
    except ImportError:
        log.warning("pytorch-grad-cam is not installed (pip install grad-cam): no peer column")
        return None
    module = copy.deepcopy(model.module).float().to(memory_format=torch.contiguous_format).requires_grad_(True)
    mean, std = np.array(model.preprocess.mean), np.array(model.preprocess.std)
    height, width = model.preprocess.size
    times: list[float] = []
    with GradCAM(model=module, target_layers=[module.get_submodule(layer)]) as cam:
        for i in range(warmup + len(frames)):
            frame = frames[i % len(frames)]
            _sync(model.device)
            start = time.perf_counter()
            rgb = cv2.cvtColor(cv2.resize(frame, (width, height)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            x = torch.from_numpy(((rgb - mean) / std).astype(np.float32)).permute(2, 0, 1)[None].to(model.device)
            grayscale = cam(input_tensor=x, targets=None)[0]
            full = cv2.resize(grayscale, (frame.shape[1], frame.shape[0]))
            frame_rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            overlay = show_cam_on_image(frame_rgb, full, use_rgb=True)
            cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def peer_stat(options: EngineOptions, layer: str, images: list[np.ndarray], warmup: int) -> Stat | None:
    """The peer on up to 100 of the frames, with the zoo model ``options`` name, on the device the run used."""
    device = "cpu" if options.device in ("auto", "tensorrt") and options.backend != "torch" else options.device
    model = load_model(options.model, weights=options.weights, device=device)
    times = time_peer(model, layer, images[: min(len(images), 100)], min(warmup, 5))
    return None if times is None else Stat.of(times)
