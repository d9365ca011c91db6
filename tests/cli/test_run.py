"""livecam run, end to end: real videos in, real videos out, every method and view, Ctrl-C; when it paces."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import livecam
from livecam.render import blend, heatmap
from tests.conftest import (PACED_FPS, FlakyCamera, InstantEngine, assert_one_line_error, invoke, livecam_process,
                            read_video, small_clip)


@pytest.mark.slow
def test_annotates_a_video_frame_for_frame(cat_video: Path, tmp_path: Path, lite0) -> None:
    out = tmp_path / "out.mp4"
    proc = livecam_process("--source", str(cat_video), "--output", str(out), "--no-show")
    assert proc.returncode == 0, proc.stderr
    assert "FPS end to end" in proc.stdout and f"wrote {out}" in proc.stdout
    inputs, in_fps = read_video(cat_video)
    outputs, out_fps = read_video(out)
    assert len(outputs) == len(inputs) and outputs[0].shape == inputs[0].shape
    assert out_fps == pytest.approx(in_fps)
    # Each output frame is the input with this frame's heatmap blended over it.
    with livecam.Explainer(lite0) as explainer:
        for frame_in, frame_out in zip(inputs[::5], outputs[::5], strict=True):
            cam = explainer(livecam.to_input(frame_in, lite0.preprocess), upsample=False).cams[0].numpy()
            expected = blend(frame_in, heatmap(cam, (frame_in.shape[1], frame_in.shape[0])), 0.5)
            region = (slice(80, 200), slice(0, 320))  # below the labels, above the speed readout
            err_expected = np.abs(frame_out[region].astype(int) - expected[region]).mean()
            err_input = np.abs(frame_out[region].astype(int) - frame_in[region]).mean()
            assert err_expected < 4 < 20 < err_input, (err_expected, err_input)


@pytest.mark.slow
def test_ctrl_c_stops_and_the_recording_is_complete(tmp_path: Path, chelsea_bgr) -> None:
    frames = [np.roll(cv2.resize(chelsea_bgr, (320, 240)), 3 * i, axis=1) for i in range(1500)]
    from tests.conftest import make_video

    video = make_video(tmp_path / "long.mp4", frames, fps=30.0)
    out = tmp_path / "out.mp4"
    partial = tmp_path / ".out.partial.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--source", str(video), "--output", str(out),
                             "--no-show"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size < 50_000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    written = int(re.search(r"wrote .* \((\d+) frames?, ", stdout)[1])
    recorded, _ = read_video(out)
    assert 0 < len(recorded) == written < len(frames)
    assert not partial.exists()


@pytest.mark.slow
def test_demo_and_image_folder_through_the_cli(tmp_path: Path, chelsea_bgr, coffee_bgr) -> None:
    out = tmp_path / "demo.mp4"
    result = invoke(["--source", "demo", "--output", str(out), "--no-show", "--max-frames", "12"])
    assert result.exit_code == 0, result.output
    assert len(read_video(out)[0]) == 12
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.jpg"), chelsea_bgr)
    cv2.imwrite(str(folder / "2.jpg"), coffee_bgr)
    out = tmp_path / "photos.avi"
    result = invoke(["--source", str(folder), "--output", str(out), "--no-show", "--class", "Espresso",
                      "--method", "cam", "--topk", "2", "--colormap", "turbo"])
    assert result.exit_code == 0, result.output
    frames, fps = read_video(out)
    assert len(frames) == 2 and fps == pytest.approx(2.0)
    assert frames[0].shape == (300, 450, 3)  # 451 wide: codecs need even sizes, the odd column is dropped


def test_smooth_on_the_demo_clip(lite0_graph: Path, tmp_path: Path) -> None:
    log, maps = tmp_path / "log.jsonl", tmp_path / "maps"
    result = invoke(["--source", "demo", "--model", str(lite0_graph), "--smooth", "0.5", "--no-show",
                     "--max-frames", "6", "--log", str(log), "--save-maps", str(maps)])
    assert result.exit_code == 0, result.output
    assert "smoothed over time, time constant 0.5 s" in result.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 6 and all(set(line["raw"]) == {"index", "name", "score"} for line in lines)
    assert all(line["labels"][0]["explained"] for line in lines)
    first, last = (np.load(maps / f"frame_{i:06d}.npz") for i in (0, 5))
    assert np.array_equal(first["maps"], first["raw_maps"])  # the first frame starts the averages
    assert last["maps"].shape == last["raw_maps"].shape == (1, 7, 7)
    assert np.abs(last["maps"] - last["raw_maps"]).max() > 1e-3
    for bad in ("-1", "nan"):
        assert_one_line_error(invoke(["--source", "demo", "--model", str(lite0_graph), "--smooth", bad, "--no-show"]),
                              "--smooth is a time constant in seconds")
    plain = invoke(["--source", "demo", "--model", str(lite0_graph), "--no-show", "--max-frames", "1"])
    assert plain.exit_code == 0 and "smoothed" not in plain.stderr, plain.output


def test_cam_on_a_head_it_cannot_explain(cat_video: Path) -> None:
    assert_one_line_error(
        invoke(["--source", str(cat_video), "--model", "convnext_tiny", "--weights", "random", "--method", "cam"]),
        "use --method gradcam")


@pytest.mark.parametrize("method", ["gradcampp", "xgradcam", "layercam", "hirescam", "eigencam", "guided",
                                    "guidedgradcam"])
def test_every_method_runs_through_the_cli(method: str, cat_video: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{method}.mp4"
    result = invoke(["--source", str(cat_video), "--output", str(out), "--no-show", "--method", method,
                      "--max-frames", "3"])
    assert result.exit_code == 0, result.output
    frames, _ = read_video(out)
    assert len(frames) == 3


def test_scorecam_warns_with_the_expected_frame_time(cat_video: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "scorecam.mp4"
    # _blocks.15 has 320 channels (the head has 1280), which keeps the test short
    result = invoke(["--source", str(cat_video), "--output", str(out), "--no-show", "--method", "scorecam",
                      "--layer", "_blocks.15", "--max-frames", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"scorecam runs one forward pass per channel of _blocks.15 \(320 per frame\): expect up to "
                     r"[0-9.]+ s per frame on cpu", caplog.text), caplog.text
    assert len(read_video(out)[0]) == 1


@pytest.mark.parametrize("args", [["--topk", "2", "--panels"], ["--view", "guided"]])
def test_panels_and_the_guided_view_tile_across_the_frame(args: list[str], cat_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "views.mp4"
    result = invoke(["--source", str(cat_video), "--output", str(out), "--no-show", "--max-frames", "3", *args])
    assert result.exit_code == 0, result.output
    frames, _ = read_video(out)
    assert len(frames) == 3 and frames[0].shape == (120, 320, 3)  # two half-size panels of the 320x240 video
    left, right = frames[0][:, :160].astype(int), frames[0][:, 160:].astype(int)
    assert np.abs(left - right).mean() > 5  # two different pictures


# -- when a run is paced: through the real command, its sources and sinks, on an engine that costs nothing ---------

SUMMARY = re.compile(r"livecam: (\d+) frames in ([0-9.]+) s, ([0-9.]+) FPS end to end")


@pytest.fixture
def instant(monkeypatch: pytest.MonkeyPatch) -> InstantEngine:
    """The command's engine, whatever --model says, is an InstantEngine: only the pacing sets the run's speed."""
    from livecam.engines import launch

    engine = InstantEngine()
    monkeypatch.setattr(launch, "open_engine",
                        lambda _options: launch.Launched(engine, "onnx", "an instant engine", "gradcam"))
    return engine


def _run_seconds(args: list[str]) -> tuple[int, float]:
    """The command's frames and its run's seconds, as its summary says them."""
    result = invoke(args)
    assert result.exit_code == 0, result.output
    found = SUMMARY.search(result.output)
    assert found, result.output
    return int(found[1]), float(found[2])


def test_a_served_file_is_paced_and_a_recorded_one_is_not(instant: InstantEngine, tmp_path: Path) -> None:
    two = small_clip(tmp_path / "two_seconds.mp4", 2.0)
    four = small_clip(tmp_path / "four_seconds.mp4", 4.0)
    watch = ["--serve", "0", "--serve-controls", "off"]  # the stand-in engine has no live controls
    frames, seconds = _run_seconds(["--source", str(two), "--no-show", *watch])
    assert frames == 48 and 0.9 * 48 / PACED_FPS <= seconds <= 1.1 * 48 / PACED_FPS  # at its own rate
    out = tmp_path / "out.mp4"
    frames, seconds = _run_seconds(["--source", str(four), "--no-show", *watch, "--output", str(out)])
    assert frames == 96 and len(read_video(out)[0]) == 96
    assert seconds < 0.5 * 96 / PACED_FPS  # recorded while served: as fast as it goes
    frames, seconds = _run_seconds(["--source", str(four), "--no-show", *watch, "--no-pace"])
    assert frames == 96 and seconds < 0.5 * 96 / PACED_FPS
    frames, seconds = _run_seconds(["--source", str(two), "--no-show", "--output", str(out), "--overwrite",
                                    "--pace"])
    assert frames == 48 and 0.9 * 48 / PACED_FPS <= seconds  # --pace: a recording at the source's rate, if asked


def test_pace_is_for_files(instant: InstantEngine) -> None:
    camera = FlakyCamera()
    try:
        assert_one_line_error(invoke(["--source", camera.url, "--no-show", "--pace"]),
                              "--pace is for files and images; a camera or stream is real time already")
    finally:
        camera.close()


def test_help_says_when_it_paces() -> None:
    text = " ".join(invoke(["--help"]).output.split())
    assert "--pace / --no-pace Play a file, image folder or the demo clip at its own frame rate" in text
    assert "Default: paced when it is shown in the window or served (--serve) and not recorded (--output)" in text
