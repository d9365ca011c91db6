"""Files and frames per second of `livecam annotate`: --jobs 1, --jobs 2 and --ray with 2 actors, in turns.

    .venv/bin/python benchmarks/annotate_throughput.py [--clips 8] [--frames 100] [--turns 2]
    .venv/bin/python benchmarks/annotate_throughput.py --long 60 [--chunk-seconds 10] [--turns 2]

Makes an archive of real-photo clips (320x240, 25 fps), exports the default model once (the workers then
run the graph on ONNX Runtime), and times each whole command, start-up included, in turns. Ray's fixed
cost is measured the same way: --ray against --jobs 1 on a one-frame clip.

With --long SECONDS the archive is one H.264 recording that long (a keyframe every 2 s, as livecam records),
annotated whole by one worker, and in parts of --chunk-seconds by 2 workers and by 2 Ray actors.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livecam.sinks.encode import VideoEncoder  # noqa: E402
from livecam.sinks import write_frames  # noqa: E402
from tests.conftest import moving_photos  # noqa: E402


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "livecam", "annotate", *args], check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--long", type=float, metavar="SECONDS", help="one recording this long instead of clips")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--threads-too", action="store_true", help="also --jobs 2 with 2 threads per worker")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="livecam-annotate-"))
    archive, tiny = work / "archive", work / "tiny"
    archive.mkdir()
    tiny.mkdir()
    if args.long:
        args.clips, args.frames = 1, round(args.long * 25)
        encoder = VideoEncoder(archive / "long.mp4", (320, 240), 25.0)
        for image in moving_photos(args.frames):
            encoder.write(image)
        encoder.close()
    else:
        for i in range(args.clips):
            write_frames(archive / f"clip{i}.avi", moving_photos(args.frames + i)[i:], 25.0)
    write_frames(tiny / "one.avi", moving_photos(1), 25.0)
    graph = work / "lite0.onnx"
    subprocess.run([sys.executable, "-m", "livecam", "export", "--output", str(graph)], check=True,
                   capture_output=True)
    modes = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"], "--ray, 2 actors": ["--ray", "--jobs", "2"]}
    if args.threads_too:  # the cores shared out among the workers (the default) against every core each
        modes["--jobs 2 --threads 2"] = ["--jobs", "2", "--threads", "2"]
    if args.long:
        parts = ["--chunk-seconds", f"{args.chunk_seconds:g}"]
        modes = {"--jobs 1, whole": ["--jobs", "1"], f"--jobs 2, parts of {args.chunk_seconds:g} s": [
            "--jobs", "2", *parts], f"--ray, 2 actors, parts of {args.chunk_seconds:g} s": ["--ray", "--jobs", "2",
                                                                                          *parts]}
        if args.threads_too:
            modes[f"--jobs 2 --threads 2, parts of {args.chunk_seconds:g} s"] = ["--jobs", "2", "--threads", "2",
                                                                                *parts]
    times: dict[str, list[float]] = {m: [] for m in modes}
    fixed: dict[str, list[float]] = {"--jobs 1": [], "--ray, 2 actors": []} if not args.long else {}
    for turn in range(args.turns):
        for mode, extra in modes.items():
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            times[mode].append(timed([str(archive), "--out-dir", str(out), "--model", str(graph), *extra]))
            print(f"turn {turn + 1}: {mode}: {times[mode][-1]:.1f} s", flush=True)
        for mode in fixed:
            out = work / "out-tiny"
            shutil.rmtree(out, ignore_errors=True)
            fixed[mode].append(timed([str(tiny), "--out-dir", str(out), "--model", str(graph), *modes[mode]]))
    frames = sum(args.frames for _ in range(args.clips))
    print(f"\n{args.clips} clips, {frames} frames in all, 320x240; whole commands, median of {args.turns} turns")
    print("| mode | seconds | files/s | frames/s |\n| --- | --- | --- | --- |")
    for mode, runs in times.items():
        s = statistics.median(runs)
        print(f"| {mode} | {s:.1f} ({', '.join(f'{r:.1f}' for r in runs)}) | {args.clips / s:.2f} | {frames / s:.0f} |")
    if not fixed:
        shutil.rmtree(work, ignore_errors=True)
        return
    one, ray_ = (statistics.median(fixed[m]) for m in fixed)
    print(f"\nOne one-frame clip: --jobs 1 {one:.1f} s, --ray {ray_:.1f} s: Ray's fixed cost about {ray_ - one:.1f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
