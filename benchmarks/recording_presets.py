"""Which x264 preset keeps 1280x720 at 60 FPS end to end? The whole pipeline, in turns, in one run.

    python benchmarks/recording_presets.py --model lite0.onnx [--turns 3]

Each turn runs every setting once on the same 720p video of real photographs
(decode, explain, overlay, encode: `livecam.pipeline.run` with a VideoFileSink),
and prints the FPS and the file's size per frame. Settings: x264 presets with
one and two encoder threads, MPEG-4 Part 2 (the codec before H.264), and nothing recorded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livecam.sinks import encode  # noqa: E402
from livecam.engines.launch import EngineOptions, open_engine  # noqa: E402
from livecam.pipeline import run  # noqa: E402
from livecam.sinks import VideoFileSink, write_frames  # noqa: E402
from livecam.sources import open_source  # noqa: E402
from tests.conftest import moving_photos  # noqa: E402

SETTINGS = [("none", None, 1), ("h264", "ultrafast", 1), ("h264", "superfast", 1), ("h264", "veryfast", 1),
            ("h264", "superfast", 2), ("mp4v", None, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="livecam-presets-"))
    video = write_frames(work / "in.avi", [cv2.resize(f, (1280, 720)) for f in moving_photos(args.frames)], 30.0)
    engine = open_engine(EngineOptions(model=args.model)).engine
    results: dict[tuple, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
    for turn in range(args.turns):
        for codec, preset, threads in SETTINGS:
            encode.DEFAULT_PRESET, encode.ENCODER_THREADS = preset or "superfast", threads
            out = work / "out.mp4"
            with open_source(str(video)) as src:
                if codec == "none":  # the same run, recording nothing: what the encoder costs
                    report = run(src, engine, [])
                else:
                    with VideoFileSink(out, fps=src.fps, overwrite=True, codec=codec) as sink:
                        report = run(src, engine, [sink])
            kb = out.stat().st_size / report.frames / 1000 if codec != "none" else 0.0
            results[(codec, preset, threads)].append((report.fps, kb))
            size = results[(codec, preset, threads)][-1][1]
            print(f"turn {turn + 1}: {codec} {preset or ''} threads={threads}: {report.fps:.1f} FPS, "
                  f"{size:.1f} kB/frame, write p50 {report.median_ms('write'):.1f} ms", flush=True)
    print("\n| codec | preset | encoder threads | FPS end to end (median of turns) | kB per frame |")
    print("| --- | --- | --- | --- | --- |")
    for (codec, preset, threads), runs in results.items():
        print(f"| {codec} | {preset or '-'} | {threads} | {statistics.median(r[0] for r in runs):.1f} "
              f"({', '.join(f'{r[0]:.1f}' for r in runs)}) | {statistics.median(r[1] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
