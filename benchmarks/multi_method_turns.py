"""One graph of several methods against one graph per method: whole engine calls, in turns, on the CPU.

    livecam export --method gradcam --topk 3 --output /tmp/mm/gradcam.onnx
    livecam export --method gradcam,cam,eigencam,finercam --topk 3 --output /tmp/mm/four.onnx
    .venv/bin/python benchmarks/multi_method_turns.py /tmp/mm/gradcam.onnx /tmp/mm/four.onnx

Times ``RuntimeEngine.run_prepared`` (the graph call and the output copies) on
chelsea for: the one-method graph; the four-method graph as the engine opens it
(cut to the method drawn, ``session.pruned_graph``); and the same graph run
whole (every method's maps on each call, which is what ONNX Runtime does when
only some outputs are fetched). Three rounds of medians over 300 calls each,
after 30 warm-up calls, the three taking turns call by call.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
from explainer_graph_turns import in_turns  # run as a script: this folder is on the path
from skimage import data

from livecam.engines.runtime.engine import RuntimeEngine
from livecam.engines.runtime.session import RuntimeSession


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
    x = engines["one method"].prepare([np.ascontiguousarray(data.chelsea()[:, :, ::-1])])
    in_turns({name: functools.partial(engine.run_prepared, x) for name, engine in engines.items()})

if __name__ == "__main__":
    main()
