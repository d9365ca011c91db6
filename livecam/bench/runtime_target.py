"""What ``livecam bench`` times on the ONNX Runtime engine: the explainer graph whole, and plain inference.

Plain inference is the same graph cut down to its ``logits`` output
(``onnx.utils.extract_model``), run by the same provider on the same input, so
the ratio of the two is the explanation's own cost, like for like. No PyTorch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livecam.bench.report import TargetConfig
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.engines.runtime.graph import INPUT_FRAMES
from livecam.engines.runtime.session import RuntimeSession
from livecam.types import Frame


def timed(fn: Callable[[], object]) -> float:
    """The wall time of one call of ``fn``, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class RuntimeTarget:
    """What the benchmark times on the ONNX Runtime engine, each as a whole call returning its wall time.

    ``explanation(i)`` runs the explainer graph on chunk ``i``'s prepared input
    (the engine's call: logits, classes, scores and the maps of its method);
    ``floor(i)`` runs plain inference of the same model on the same input with
    the same provider: the explainer graph cut down to its ``logits`` output
    (``onnx.utils.extract_model``), so neither the maps nor the top-K are
    computed.
    """

    stage_order: tuple[str, ...] = ("preprocess", "explain", "render")

    def __init__(self, engine: RuntimeEngine, chunks: list[list[np.ndarray]], workdir: Path) -> None:
        import onnx.utils

        self.engine = engine
        self.model_name = engine.info.model
        session = engine.session
        self.inputs = [engine.prepare(c) for c in chunks[:64]]
        floor_path = workdir / "floor.onnx"
        onnx.utils.extract_model(str(engine.path), str(floor_path), [session.input_name], ["logits"])
        self.floor_session = RuntimeSession(floor_path, session.request, cache_dir=session.cache_dir,
                                            io_binding=session.io_binding)

    def floor(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        return timed(lambda: self.floor_session.run(x, ["logits"]))

    def explanation(self, i: int) -> float:
        x = self.inputs[i % len(self.inputs)]
        return timed(lambda: self.engine.run_prepared(x))

    def stages(self, chunk: list[np.ndarray]) -> dict[str, float]:
        t0 = time.perf_counter()
        x = self.engine.prepare(chunk)
        t1 = time.perf_counter()
        explanation = self.engine.run_prepared(x)
        t2 = time.perf_counter()
        for j, image in enumerate(chunk):
            self.engine.render(Frame(image, j, 0.0), explanation, j)
        t3 = time.perf_counter()
        stages = {"preprocess": t1 - t0, "explain": t2 - t1, "render": t3 - t2}
        if self.engine.info.input == INPUT_FRAMES:  # stacking only: the graph resizes and normalizes
            stages["explain"] += stages.pop("preprocess")
        return stages

    def step(self, frames: list[Frame]) -> float:
        return timed(lambda: self.engine.process_batch(frames))

    def config(self) -> TargetConfig:
        info = self.engine.info
        return {"engine": "onnxruntime", "runtime": self.engine.description, "provider": self.engine.session.provider,
                "precision": info.precision, "layer": info.layer, "input": info.input,
                "input_size": list(info.preprocess.size), "graph_file": str(self.engine.path)}

    def device_memory_mb(self) -> dict[str, float]:
        return {}

    def device_name(self) -> str | None:
        return None
