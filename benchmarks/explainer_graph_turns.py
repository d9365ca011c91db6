"""Explainer graphs against the first one cut at its logits: whole ONNX Runtime calls, in turns.

    livecam export --output /tmp/b/lite0.onnx            # at the commit before the change, then
    livecam export --output /tmp/b/lite0c.onnx           # at the commit with it
    .venv/bin/python benchmarks/explainer_graph_turns.py before=/tmp/b/lite0.onnx after=/tmp/b/lite0c.onnx

Each graph is LABEL=PATH (or a path, labelled by its name); any number of them.
The floor is the first graph cut at its logits. Every output is fetched (ONNX
Runtime computes them all either way). Prints three rounds of medians over 300
calls each, after 30 warm-up calls.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
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
    parser.add_argument("graphs", nargs="+", metavar="LABEL=PATH")
    args = parser.parse_args()
    graphs = {}
    for text in args.graphs:
        label, _, path = text.rpartition("=")
        graphs[label or Path(path).stem] = Path(path)
    first = next(iter(graphs.values()))
    floor = first.with_name("floor.onnx")
    onnx.utils.extract_model(str(first), str(floor), ["x"], ["logits"])
    sessions = {"floor (logits only)": session(floor), **{label: session(path) for label, path in graphs.items()}}
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    in_turns({name: functools.partial(sess.run, None, {"x": x}) for name, sess in sessions.items()})


def in_turns(calls: dict[str, Callable[[], object]], rounds: int = 3, calls_per_round: int = 330,
             warm_up: int = 30) -> None:
    """Time whole ``calls`` taking turns call by call; print each round's medians, as ratios to the first's."""
    for round_ in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(calls_per_round):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        medians = {name: float(np.median(t[warm_up:])) * 1000 for name, t in times.items()}
        base = next(iter(medians.values()))
        print(f"round {round_ + 1}: " + "; ".join(f"{k} {m:.2f} ms ({m / base:.3f}x)" for k, m in medians.items()))


if __name__ == "__main__":
    main()
