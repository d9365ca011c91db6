"""Median latency of plain inference and explanations of one model, batch 1, in one process, in turns.

    .venv/bin/python benchmarks/explain_vs_inference.py [--model efficientnet_lite0] [--weights FILE|random]
        [--methods gradcam,cam] [--layers LAYER,...] [--runs 200]

It times the explanation call alone (no decode, render or encode), round-robin after warm-up, and
prints a Markdown table: each method at the default layer, and Grad-CAM at each of ``--layers``
(e.g. a vision transformer's patch embedding, whose backward pass crosses every block).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

import livecam


def median_ms(steps: dict[str, Callable[[], object]], runs: int, warmup: int = 20) -> dict[str, float]:
    """Time the steps round-robin, so that a noisy neighbour slows them all alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + runs):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000.0 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="default: the shipped weights for efficientnet_lite0, "
                                                         "else random")
    parser.add_argument("--methods", default="gradcam,cam")
    parser.add_argument("--layers", default="", help="more layers to time Grad-CAM at, comma-separated")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    weights = args.weights or (None if args.model == "efficientnet_lite0" else "random")
    model = livecam.load_model(args.model, weights=weights)
    x = torch.randn(1, 3, *model.preprocess.size, generator=torch.Generator().manual_seed(0))

    def plain() -> None:
        with torch.inference_mode():
            model.module(x)

    steps: dict[str, Callable[[], object]] = {"plain inference": plain}
    for method in args.methods.split(","):
        explainer = livecam.Explainer(model, method)
        steps[f"{method} at {explainer.layer}"] = lambda explainer=explainer: explainer(x, upsample=False)
    for layer in filter(None, args.layers.split(",")):
        explainer = livecam.Explainer(model, "gradcam", layer=layer)
        steps[f"gradcam at {layer}"] = lambda explainer=explainer: explainer(x, upsample=False)
    rows = list(median_ms(steps, args.runs).items())
    print(f"{args.model}, batch 1, {model.preprocess.size[0]}px, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| step | median ms | x plain |\n| --- | --- | --- |")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {ms / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
