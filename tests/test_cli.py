"""The command line, end to end: real videos in, real videos out, clear errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import livecam
from livecam.cli import main
from livecam.render import blend, heatmap
from tests.conftest import random_torchvision, read_video


def _livecam(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livecam", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args)


@pytest.mark.slow
def test_annotates_a_video_frame_for_frame(cat_video: Path, tmp_path: Path, lite0) -> None:
    out = tmp_path / "out.mp4"
    proc = _livecam("--source", str(cat_video), "--output", str(out), "--no-show")
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
    result = _invoke(["--source", "demo", "--output", str(out), "--no-show", "--max-frames", "12"])
    assert result.exit_code == 0, result.output
    assert len(read_video(out)[0]) == 12
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.jpg"), chelsea_bgr)
    cv2.imwrite(str(folder / "2.jpg"), coffee_bgr)
    out = tmp_path / "photos.avi"
    result = _invoke(["--source", str(folder), "--output", str(out), "--no-show", "--class", "Espresso",
                      "--method", "cam", "--topk", "2", "--colormap", "turbo"])
    assert result.exit_code == 0, result.output
    frames, fps = read_video(out)
    assert len(frames) == 2 and fps == pytest.approx(2.0)
    assert frames[0].shape == (300, 450, 3)  # 451 wide: codecs need even sizes, the odd column is dropped


def test_help_documents_every_option() -> None:
    result = _invoke(["--help"])
    assert result.exit_code == 0
    for option in ("--source", "--model", "--weights", "--method", "--layer", "--class", "--topk", "--device",
                   "--output", "--show / --no-show", "--max-frames", "--alpha", "--colormap", "--overwrite"):
        assert option in result.output, option
    assert _invoke([]).output == result.output  # no arguments: the help
    assert "[run] OPTIONS | COMMAND" in result.output.splitlines()[0]  # the tool's help, not run's
    text = " ".join(result.output.split())
    for name in ("annotate", "export", "bench", "evaluate", "Grad-CAM++", "Score-CAM", "guided backpropagation"):
        assert name in text, name
    assert "Grad-CAM or CAM" not in text


def _assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livecam: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def bad_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(random_torchvision("resnet18").state_dict(), path)
    return path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--source", "missing.mp4"], "missing.mp4 does not exist"),
        (["--source", "99"], "camera 99 could not be opened"),
        (["--source", "{fake}"], "as a video"),
        (["--source", "{video}", "--model", "resnet5O"], "unknown model 'resnet5O'"),
        (["--source", "{video}", "--class", "tabbby"], "unknown class 'tabbby' (did you mean tabby"),
        (["--source", "{video}", "--layer", "_blocks.99"], "no layer '_blocks.99'"),
        (["--source", "{video}", "--weights", "{weights}"], "do not fit model 'efficientnet_lite0'"),
        (["--source", "{video}", "--output", "{file}/out.mp4"], "does not exist"),
        (["--source", "{video}", "--output", "{existing}"], "already exists; pass --overwrite"),
        (["--source", "{video}", "--output", "{video}"], "is an input of this command"),
        (["--source", "{video}", "--output", "{video}", "--overwrite"], "is an input of this command"),
        (["--source", "{video}", "--output", "out.gif"], "must name a file ending in"),
        (["--source", "{video}", "--show"], "no display"),
        (["--source", "{video}", "--device", "tpu"], "unknown device"),
        (["--source", "{video}", "--alpha", "2"], "--alpha"),
        (["--source", "{video}", "--method", "scorecam9"], "--method"),
        (["--source", "{video}", "--panels", "--view", "guided"], "do not combine"),
        (["--source", "{video}", "--panels", "--class", "tabby"], "does not combine with --class"),
        (["--source", "{video}", "--view", "beside"], "--view"),
        (["--source", "{video}", "--panels", "--topk", "1"], "needs --topk 2 or more, not 1"),
        (["--source", "{video}", "--weights", "{dir}"], "is a folder; pass the state-dict file in it"),
        (["--source", "{video}", "--weights", "{dir}/none.pt"], "none.pt does not exist"),
        (["evaluate", "--source", "{video}", "--model", "{dir}/lite0.onnx"], "takes a zoo model, not a graph"),
        (["export", "--output", "{dir}/x.onnx", "--topk", "11"], "--topk"),
        (["--sourc", "{video}"], "No such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, fragment, tmp_path: Path, cat_video: Path,
                                               bad_weights: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00not a video" * 50)
    afile = tmp_path / "afile"
    afile.write_text("x")
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"the user's recording")
    fill = {"{fake}": str(fake), "{video}": str(cat_video), "{weights}": str(bad_weights), "{file}": str(afile),
            "{existing}": str(existing), "{dir}": str(tmp_path)}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    before = cat_video.read_bytes()
    _assert_one_line_error(_invoke(args), fragment)
    assert cat_video.read_bytes() == before
    assert existing.read_bytes() == b"the user's recording"
    assert not list(tmp_path.glob(".*partial*")) and not list(cat_video.parent.glob(".*partial*"))


def test_cam_on_a_head_it_cannot_explain(cat_video: Path) -> None:
    _assert_one_line_error(
        _invoke(["--source", str(cat_video), "--model", "convnext_tiny", "--weights", "random", "--method", "cam"]),
        "use --method gradcam")


@pytest.mark.slow
def test_errors_from_the_real_entry_point(tmp_path: Path) -> None:
    proc = _livecam("--source", "no_such_file.mp4")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "livecam: error: no_such_file.mp4 does not exist; give a camera index (0), a video file, "
        "a folder of images, a URL or 'demo'"
    ]
    # OpenCV and FFmpeg print lines of their own when a video or a stream fails to open
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"garbage" * 100)
    for source, message in [(str(fake), "as a video"), ("http://127.0.0.1:9/x.mp4", "could not read the stream")]:
        proc = _livecam("--source", source)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.parametrize("method", ["gradcampp", "xgradcam", "layercam", "hirescam", "eigencam", "guided",
                                    "guidedgradcam"])
def test_every_method_runs_through_the_cli(method: str, cat_video: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{method}.mp4"
    result = _invoke(["--source", str(cat_video), "--output", str(out), "--no-show", "--method", method,
                      "--max-frames", "3"])
    assert result.exit_code == 0, result.output
    frames, _ = read_video(out)
    assert len(frames) == 3


def test_scorecam_warns_with_the_expected_frame_time(cat_video: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "scorecam.mp4"
    # _blocks.15 has 320 channels (the head has 1280), which keeps the test short
    result = _invoke(["--source", str(cat_video), "--output", str(out), "--no-show", "--method", "scorecam",
                      "--layer", "_blocks.15", "--max-frames", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"scorecam runs one forward pass per channel of _blocks.15 \(320 per frame\): expect up to "
                     r"[0-9.]+ s per frame on cpu", caplog.text), caplog.text
    assert len(read_video(out)[0]) == 1


@pytest.mark.parametrize("args", [["--topk", "2", "--panels"], ["--view", "guided"]])
def test_panels_and_the_guided_view_tile_across_the_frame(args: list[str], cat_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "views.mp4"
    result = _invoke(["--source", str(cat_video), "--output", str(out), "--no-show", "--max-frames", "3", *args])
    assert result.exit_code == 0, result.output
    frames, _ = read_video(out)
    assert len(frames) == 3 and frames[0].shape == (120, 320, 3)  # two half-size panels of the 320x240 video
    left, right = frames[0][:, :160].astype(int), frames[0][:, 160:].astype(int)
    assert np.abs(left - right).mean() > 5  # two different pictures
