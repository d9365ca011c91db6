"""The cascading randomization check of Adebayo et al. (2018) on EfficientNet-Lite0, for the README.

Randomizes a copy of the real model layer by layer from the top and prints, per
stage and method, the Spearman rank correlation of the map with the trained
model's map (mean, min and max over four photographs from scikit-image).
Writes benchmarks/results/sanity-cascade-lite0.{md,json}.

    .venv/bin/python scripts/sanity_check.py
"""

from __future__ import annotations

import json
from pathlib import Path

import skimage.data as data

import livecam
from livecam.cams.metrics import cascade_randomization, cascade_stages

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]
METHODS = ["gradcam", "gradcampp", "layercam", "eigencam", "guided", "guidedgradcam"]
OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def main() -> None:
    model = livecam.load_model("efficientnet_lite0", device="cpu")
    x = livecam.to_input([getattr(data, p)()[..., ::-1].copy() for p in PHOTOS], model.preprocess)
    stages = [[name] for name in cascade_stages(model.module)]
    rows = cascade_randomization(model.module, x, METHODS, stages, seed=0)
    lines = [
        "# Cascading randomization (Adebayo et al. 2018), EfficientNet-Lite0",
        "",
        "Spearman rank correlation of each method's map with the trained model's map, after randomizing",
        f"the layers from the top down to the one named (photos: {', '.join(PHOTOS)}; mean [min, max];",
        "seed 0; a flat map counts as 0). Reproduce: `.venv/bin/python scripts/sanity_check.py`.",
        "",
        "| randomized down to | " + " | ".join(METHODS) + " |",
        "| --- | " + " | ".join("---" for _ in METHODS) + " |",
    ]
    for stage, row in zip(stages, rows, strict=True):
        cells = [f"{sum(v) / len(v):.2f} [{min(v):.2f}, {max(v):.2f}]" for v in (row[m] for m in METHODS)]
        lines.append(f"| {stage[0]} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    (OUT / "sanity-cascade-lite0.md").write_text(table)
    (OUT / "sanity-cascade-lite0.json").write_text(json.dumps(
        {"photos": PHOTOS, "methods": METHODS, "seed": 0,
         "stages": [{"randomized": s[0], **row} for s, row in zip(stages, rows, strict=True)]}, indent=1))


if __name__ == "__main__":
    main()
