"""The int8 explainer graph against the fp32 one: whole ONNX Runtime calls on real frames, in turns, 2 threads.

    livecam export --output /tmp/b/lite0.onnx
    livecam export --precision int8 --calibrate demo --output /tmp/b/lite0-int8.onnx
    .venv/bin/python benchmarks/int8_turns.py /tmp/b/lite0.onnx /tmp/b/lite0-int8.onnx

Both graphs hold the whole explanation (logits, top-K, maps), so the ratio is of what a
user runs. Each round times 300 calls of each graph, alternating, after 30 warm-up calls,
on the same preprocessed frame of the demo clip; prints each round's medians and ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from livecam.engines.runtime.graph import GraphInfo
from livecam.preprocess import to_array
from livecam.sources import open_source


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fp32", type=Path)
    parser.add_argument("int8", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    info = GraphInfo.read(args.fp32)
    with open_source("demo") as source:
        frame = next(iter(source)).image
    x = np.ascontiguousarray(to_array([frame], info.preprocess).transpose(0, 3, 1, 2))
    sessions = {"fp32": session(args.fp32, args.threads), "int8": session(args.int8, args.threads)}
    for s in sessions.values():
        for _ in range(30):
            s.run(None, {"x": x})
    for round_ in range(3):
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.calls):
            for name, s in sessions.items():
                start = time.perf_counter()
                s.run(None, {"x": x})
                times[name].append(time.perf_counter() - start)
        medians = {name: 1000 * float(np.median(t)) for name, t in times.items()}
        print(f"round {round_ + 1}: fp32 {medians['fp32']:.2f} ms, int8 {medians['int8']:.2f} ms, "
              f"int8/fp32 {medians['int8'] / medians['fp32']:.2f}x")


if __name__ == "__main__":
    main()
