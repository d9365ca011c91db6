"""The explainer graph against the same graph cut at its logits: whole ONNX Runtime calls, in turns.

    livecam export --output /tmp/b/lite0.onnx            # at the commit before the change, then
    livecam export --output /tmp/b/lite0c.onnx           # at the commit with it
    .venv/bin/python benchmarks/explainer_graph_turns.py /tmp/b/lite0.onnx /tmp/b/lite0c.onnx

The floor is the first graph cut at its logits. Prints three rounds of medians
over 300 calls each, after 30 warm-up calls.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx.utils
import onnxruntime as ort


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    floor = args.before.with_name("floor.onnx")
    onnx.utils.extract_model(str(args.before), str(floor), ["x"], ["logits"])
    sessions = {"floor (logits only)": session(floor), "before: expand + mean, Mul + ReduceSum": session(args.before),
                "after: W_c/(hw), MatMul": session(args.after)}
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for round_ in range(3):
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(330):
            for name, sess in sessions.items():
                start = time.perf_counter()
                sess.run(None, {"x": x})
                times[name].append(time.perf_counter() - start)
        medians = {name: float(np.median(t[30:])) * 1000 for name, t in times.items()}
        base = medians["floor (logits only)"]
        print(f"round {round_ + 1}: " + "; ".join(f"{k} {m:.2f} ms ({m / base:.3f}x)" for k, m in medians.items()))


if __name__ == "__main__":
    main()
