"""One graph of several methods against one graph per method: whole engine calls, in turns, on the CPU.

    livecam export --method gradcam --topk 3 --output /tmp/mm/gradcam.onnx
    livecam export --method gradcam,cam,eigencam,finercam --topk 3 --output /tmp/mm/four.onnx
    .venv/bin/python benchmarks/multi_method_turns.py /tmp/mm/gradcam.onnx /tmp/mm/four.onnx

Times ``RuntimeEngine.run_prepared`` (the graph call and the output copies) on
chelsea for: the one-method graph; the four-method graph as the engine opens it
(cut to the method drawn, ``session.pruned_graph``); and the same graph run
whole (every method's maps on each call, which is what ONNX Runtime does when
only some outputs are fetched). Then ``--compare-method`` side by side (the
first method and the last): whole ``CompareEngine.process_batch`` calls, one
ONNX Runtime call for both sides against a call each. Three rounds of medians
over 300 calls each, after 30 warm-up calls, taking turns call by call.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
from explainer_graph_turns import in_turns  # run as a script: this folder is on the path
from skimage import data

from livecam.engines.compare import CompareEngine
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.engines.runtime.session import RuntimeSession
from livecam.types import Frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("single", type=Path, help="a graph of one method")
    parser.add_argument("multi", type=Path, help="a graph of several methods, the single one's first")
    args = parser.parse_args()
    whole = RuntimeSession(args.multi, "cpu")
    engines = {
        "one method": RuntimeEngine(args.single, "cpu", topk=3),
        "several, opened for one": RuntimeEngine(args.multi, "cpu", topk=3),
        "several, run whole": RuntimeEngine(args.multi, "cpu", topk=3, session=whole),
    }
    chelsea = np.ascontiguousarray(data.chelsea()[:, :, ::-1])
    x = engines["one method"].prepare([chelsea])
    in_turns({name: functools.partial(engine.run_prepared, x) for name, engine in engines.items()})

    # --compare-method: the first and another method of the graph side by side, whole process_batch calls on
    # chelsea: one call for both sides (explain_beside) against a call each
    other = RuntimeEngine(args.multi, "cpu", topk=3).info.all_methods[-1]
    shared = CompareEngine(RuntimeEngine(args.multi, "cpu", topk=3), RuntimeEngine(args.multi, "cpu", topk=3,
                                                                                    method=other))
    apart = CompareEngine(RuntimeEngine(args.multi, "cpu", topk=3), RuntimeEngine(args.multi, "cpu", topk=3,
                                                                                   method=other))
    apart.sides[0].explain_beside = lambda *_: None  # type: ignore[method-assign]
    frame = [Frame(chelsea, 0, 0.0)]
    print(f"side by side, {shared.sides[0].method} | {other}:")
    in_turns({"a call each": functools.partial(apart.process_batch, frame),
              "one call for both": functools.partial(shared.process_batch, frame)})

if __name__ == "__main__":
    main()
