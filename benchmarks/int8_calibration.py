"""Which calibration makes the int8 explainer graph keep fp32's answers: method, frame count, nodes left in fp32.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_calibration.py --folder /tmp/int8 > benchmarks/results/x.md

EfficientNet-Lite0 (ImageNet weights) as an explainer graph (tests/graphs/test_quantize.py builds it:
the model, then a CAM part named under livecam/), quantized by livecam.graphs.quantize on frames of the
demo clip (its even frames, spread evenly), compared with fp32 on frames held out from calibration
(the clip's frames 1 mod 4, and views of scikit-image photographs the clip does not show). For each
setting: top-1 agreement, the first map's correlation (median, worst), calibration time, and the int8
graph's time over fp32's: whole session.run calls on one frame, 2 threads, the two graphs in turns,
3 rounds of 20 calls after warm-up, the median of the round medians. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import livecam
from livecam.graphs.quantize import Recipe, fidelity, quantize_model
from tests.graphs.test_quantize import batches, explainer_graph, frame_sets, pick


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_ratio(fp32: Path, int8: Path, x: np.ndarray, rounds: int = 3, calls: int = 20) -> tuple[float, float]:
    """(fp32 ms, int8 ms): medians over rounds of the median call, the graphs in turns."""
    sessions = [session(fp32), session(int8)]
    for s in sessions:
        for _ in range(5):
            s.run(None, {"x": x})
    medians: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                s.run(None, {"x": x})
                times.append(time.perf_counter() - start)
            medians[i].append(float(np.median(times)))
    return float(np.median(medians[0])) * 1e3, float(np.median(medians[1])) * 1e3


def keep_sets(source: Path) -> dict[str, list[str]]:
    graph = onnx.load(str(source)).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    gemm = [n.name for n in graph.node if n.op_type == "Gemm"]
    return {"none": [], "head Gemm": gemm, "first 4 convs": convs[:4], "first 8 convs": convs[:8],
            "first 8 convs + head Gemm": convs[:8] + gemm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/livecam-int8"))
    parser.add_argument("--quick", action="store_true", help="the first three settings only")
    parser.add_argument("--start", type=int, default=0, help="resume at this row of the grid")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    model = livecam.load_model("efficientnet_lite0")
    source = args.folder / "lite0-explainer.onnx"
    if not source.exists():
        explainer_graph(model, source)
    pool, held = frame_sets()
    held_out = batches(model, held)
    keeps = keep_sets(source)
    grid: list[tuple[str, int, str, Recipe]] = [
        *[("minmax", 16, keep, Recipe()) for keep in ("none", "head Gemm", "first 8 convs")],
        *[("minmax", frames, keep, Recipe()) for frames in (32, 64, 128) for keep in ("none", "first 8 convs")],
        ("minmax", 32, "head Gemm", Recipe()),
        *[(method, frames, "first 8 convs", Recipe(method=method)) for method in ("entropy", "percentile")
          for frames in (32, 128)],
        ("entropy", 32, "none", Recipe(method="entropy")), ("percentile", 32, "none", Recipe(method="percentile")),
        ("minmax", 32, "none", Recipe(reduce_range=False)),
        ("minmax", 32, "first 8 convs", Recipe(reduce_range=False)),
        ("minmax", 32, "first 8 convs", Recipe(symmetric_activations=True)),
        ("minmax", 32, "first 4 convs", Recipe()),
        ("minmax", 32, "first 8 convs + head Gemm", Recipe())]
    if args.quick:
        grid = grid[:3]
    if args.start:
        print("(resumed)")
    print(f"# int8 calibration of the Lite0 explainer graph: AMD EPYC, 2 cores, {datetime.date.today()}\n")
    print(f"{len(held)} held-out frames; calibration frames from a pool of {len(pool)}; onnxruntime "
          f"{ort.__version__}; weights int8 per channel (7-bit unless said), activations uint8, QDQ\n")
    print("| method | frames | kept fp32 | variant | top-1 agreement | map corr median | worst | calibration s "
          "| fp32 ms | int8 ms | int8/fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    x = held_out[0][:1]
    for method, frames, keep, recipe in grid[args.start:]:
        target = args.folder / "int8.onnx"
        start = time.perf_counter()
        quantize_model(source, target, batches(model, pick(pool, frames)), recipe, keep_fp32=keeps[keep])
        calibration = time.perf_counter() - start
        f = fidelity(source, target, held_out)
        fp32_ms, int8_ms = time_ratio(source, target, x)
        variant = ", ".join(filter(None, ["8-bit weights" if not recipe.reduce_range else "",
                                          "int8 symmetric activations" if recipe.symmetric_activations else "",
                                          ", ".join(f"{k} {v}" for k, v in recipe.extra.items())])) or "-"
        print(f"| {method} | {frames} | {keep} | {variant} | {f.agreement:.1%} | {f.median_correlation:.4f} | "
              f"{f.worst_correlation:.3f} | {calibration:.1f} | {fp32_ms:.1f} | {int8_ms:.1f} | "
              f"{int8_ms / fp32_ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
