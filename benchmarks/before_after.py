"""Two checkouts of livecam, measured in turns: does a change leave outputs and figures as they were?

For a change meant to alter no behaviour (issue 16's restructure), run the same commands from the
commit before and the commit after, alternating which goes first in each round, in one run on one
machine, and compare like with like:

- ``livecam --source demo --output demo.mp4``: the end-to-end FPS it reports, and the recording,
  decoded and compared frame by frame;
- ``livecam bench``: end-to-end FPS and the step's p50 latency from its JSON report;
- ``livecam annotate``: the FPS of each file from the manifest, and the annotated files, decoded and
  compared frame by frame.

Each side runs with its checkout first on ``PYTHONPATH`` and its own graph cache (exported in a
warm-up before the timed rounds, so no round pays for an export). Both use this interpreter.

    python benchmarks/before_after.py OLD_CHECKOUT NEW_CHECKOUT --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

SUMMARY = re.compile(r"([\d.]+) FPS end to end")


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def largest_difference(a: Path, b: Path) -> str:
    """'identical', or how the two recordings differ (frame count, then the largest pixel difference)."""
    fa, fb = decode(a), decode(b)
    if len(fa) != len(fb):
        return f"{len(fa)} frames against {len(fb)}"
    worst = max((int(np.abs(x.astype(np.int16) - y.astype(np.int16)).max()) for x, y in zip(fa, fb, strict=True)),
                default=0)
    return f"identical ({len(fa)} frames)" if worst == 0 else f"{len(fa)} frames, largest pixel difference {worst}"


class Side:
    def __init__(self, name: str, checkout: Path, work: Path) -> None:
        self.name, self.checkout, self.work = name, checkout.resolve(), work / name
        self.work.mkdir(parents=True)
        self.env = {**os.environ, "PYTHONPATH": str(self.checkout), "LIVECAM_CACHE_DIR": str(self.work / "cache")}

    def livecam(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([sys.executable, "-m", "livecam", *args], env=self.env, cwd=self.work,
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise SystemExit(f"{self.name}: livecam {' '.join(args)} failed:\n{out.stderr}")
        return out

    def demo(self, output: Path) -> float:
        out = self.livecam("--source", "demo", "--output", str(output), "--no-show", "--overwrite")
        err = out.stdout + out.stderr
        found = SUMMARY.search(err)
        if found is None:
            raise SystemExit(f"{self.name}: no FPS in the demo's summary:\n{err}")
        return float(found.group(1))

    def bench(self, report: Path, frames: int) -> tuple[float, float, float]:
        """End-to-end FPS, the step's p50 (ms) and the median start-up to the first frame (s)."""
        self.livecam("bench", "--frames", str(frames), "--no-peer", "--startup", "3", "--json", str(report),
                     "--overwrite")
        result = json.loads(report.read_text())
        return float(result["pipeline"]["fps"]), float(result["step"]["p50_ms"]), float(result["startup_p50_s"])

    def annotate(self, inputs: list[Path], out_dir: Path) -> list[float]:
        self.livecam("annotate", *map(str, inputs), "--out-dir", str(out_dir), "--force")
        lines = [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines() if line]
        return [float(line["fps"]) for line in lines if line.get("status") == "done"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bench-frames", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="before-after-") as tmp:
        work = Path(tmp)
        sides = [Side("old", args.old, work), Side("new", args.new, work)]
        clips = work / "clips"
        clips.mkdir()
        for side in sides:  # warm-up: each side exports its graph into its own cache, and the clip is made
            side.demo(side.work / "warmup.mp4")
        # the annotate inputs: the demo recording and a second, shorter cut of it
        inputs = [clips / "demo.mp4", clips / "half.mp4"]
        sides[0].livecam("--source", "demo", "--output", str(inputs[0]), "--no-show", "--overwrite")
        frames = decode(inputs[0])
        with av.open(str(inputs[1]), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            for image in frames[: len(frames) // 2]:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
            container.mux(stream.encode(None))
        figures: dict[str, dict[str, list[float]]] = {s.name: {"demo": [], "bench": [], "step": [], "startup": [],
                                                                  "annotate": []}
                                                       for s in sides}
        for round_ in range(args.rounds):
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                f = figures[side.name]
                f["demo"].append(side.demo(side.work / "demo.mp4"))
                fps, step, startup = side.bench(side.work / f"bench-{round_}.json", args.bench_frames)
                f["bench"].append(fps)
                f["step"].append(step)
                f["startup"].append(startup)
                out_dir = side.work / f"annotated-{round_}"
                f["annotate"].append(statistics.mean(side.annotate(inputs, out_dir)))
                print(f"round {round_ + 1} {side.name}: demo {f['demo'][-1]:.1f} FPS, bench {fps:.1f} FPS "
                      f"(step p50 {step:.2f} ms, start-up {startup:.2f} s), "
                      f"annotate {f['annotate'][-1]:.1f} FPS", flush=True)
        old, new = (s.work for s in sides)
        print("\n| figure | before (median, all rounds) | after (median, all rounds) | after / before |")
        print("|---|---|---|---|")
        names = {"demo": "make demo, FPS end to end", "bench": "livecam bench, FPS end to end",
                 "step": "livecam bench, step p50 (ms)",
                 "startup": "livecam bench, command to first frame (s, median of 3)",
                 "annotate": "livecam annotate, mean FPS per file"}
        for key, label in names.items():
            a, b = figures["old"][key], figures["new"][key]
            print(f"| {label} | {statistics.median(a):.2f} ({', '.join(f'{x:.2f}' for x in a)}) | "
                  f"{statistics.median(b):.2f} ({', '.join(f'{x:.2f}' for x in b)}) | "
                  f"{statistics.median(b) / statistics.median(a):.3f} |")
        print("\nOutputs, before against after:")
        print(f"- demo.mp4: {largest_difference(old / 'demo.mp4', new / 'demo.mp4')}")
        for name in ("demo.mp4", "half.mp4"):
            print(f"- annotate {name}: {largest_difference(old / 'annotated-0' / name, new / 'annotated-0' / name)}")
        a_bench = json.loads((old / "bench-0.json").read_text())
        b_bench = json.loads((new / "bench-0.json").read_text())
        same = {k for k in a_bench if k in b_bench and a_bench[k] == b_bench[k]}
        print(f"- bench report keys: {sorted(a_bench) == sorted(b_bench) and 'the same' or 'different'}; "
              f"equal values in: {', '.join(sorted(same)) or 'none'}")


if __name__ == "__main__":
    main()
