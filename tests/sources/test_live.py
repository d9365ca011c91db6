"""Live sources that come back: a real loopback MJPEG camera that drops, stalls and goes away.

The camera is a standard-library ThreadingHTTPServer serving multipart/x-mixed-replace
JPEG frames, as IP cameras do. Every frame carries its sequence number as 12 black or
white stripes, read back from the decoded frames.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from livecam.sources import LiveSource, open_source
from tests.conftest import FlakyCamera, read_stamp, read_video, stamp

@pytest.fixture
def camera():
    cam = FlakyCamera()
    yield cam
    cam.close()


def test_stamps_survive_jpeg() -> None:
    for seq in (0, 1, 5, 1234, 4095):
        jpeg = cv2.imencode(".jpg", stamp(seq), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        assert read_stamp(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)) == seq


def test_iteration_starts_from_a_current_frame(camera: FlakyCamera) -> None:
    """Frames buffered while a model loads are not served: the first one is current."""
    with open_source(camera.url) as src:
        assert isinstance(src, LiveSource)
        time.sleep(2.0)  # the model loading
        now = camera.seq
        it = iter(src)
        first = next(it)
        second = next(it)
    assert now >= 40  # 2 s at 25 fps went by
    assert read_stamp(first.image) >= now - 2, (read_stamp(first.image), now)
    assert read_stamp(second.image) > read_stamp(first.image)
    assert (first.index, second.index) == (0, 1) and second.timestamp > first.timestamp


def test_a_stream_that_drops_comes_back(camera: FlakyCamera, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="livecam")
    frames = []
    with open_source(camera.url, reconnect=10) as src:
        for frame in src:
            frames.append(frame)
            if len(frames) == 10:
                camera.mode = "down"
                threading.Timer(2.0, setattr, (camera, "mode", "up")).start()
            if len(frames) >= 10 and read_stamp(frame.image) > camera.seq - 3 and frame.timestamp > 2.0 + \
                    frames[9].timestamp:
                break
    stamps = [read_stamp(f.image) for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [f.index for f in frames] == list(range(len(frames)))
    times = [f.timestamp for f in frames]
    assert times == sorted(times)
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) > 1.5  # the gap of the drop
    text = caplog.text
    assert "stopped delivering frames; reconnecting (try 1 in 0.5 s)" in text
    assert "is back after" in text


def test_a_stalled_stream_is_a_drop_not_a_hang(camera: FlakyCamera, caplog: pytest.LogCaptureFixture) -> None:
    """A server that keeps the connection open and sends nothing: the read times out, reconnects, gives up."""
    caplog.set_level("WARNING", logger="livecam")
    start = time.monotonic()
    with open_source(camera.url, reconnect=2.5, timeout_s=1.5) as src:
        it = iter(src)
        next(it)
        camera.mode = "stall"
        rest = list(it)
    assert time.monotonic() - start < 15
    assert len(rest) <= 3  # frames in flight when it stalled
    assert "stopped delivering frames; reconnecting (try 1 in 0.5 s)" in caplog.text
    assert "stopped delivering frames; gave up reconnecting after" in caplog.text


def test_reconnect_zero_ends_at_the_first_drop(camera: FlakyCamera) -> None:
    with open_source(camera.url, reconnect=0) as src:
        it = iter(src)
        next(it)
        camera.mode = "down"
        start = time.monotonic()
        list(it)
        assert src.gave_up and time.monotonic() - start < 5


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # as a user starts it: without the OpenCV log settings that in-process CLI tests leave in this environment
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-m", "livecam", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def lite0_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("graph") / "lite0.onnx"
    done = _cli("export", "--output", str(path), timeout=300)
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.slow
def test_cli_records_across_a_drop(camera: FlakyCamera, lite0_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.avi"

    def drop() -> None:  # once the run has started recording, drop for 2 s
        while len(camera.sent) < 40:
            time.sleep(0.01)
        camera.mode = "down"
        before.append(len(camera.sent))
        time.sleep(2.0)
        camera.mode = "up"

    before: list[int] = []
    threading.Thread(target=drop, daemon=True).start()
    done = _cli("--source", camera.url, "--model", str(lite0_onnx), "--output", str(out), "--no-show",
                "--max-frames", "80")
    assert done.returncode == 0, done.stderr
    lines = _only_livecam_lines(done)  # FFmpeg's "Stream ends prematurely" and the like stay quiet
    assert f"livecam: stream {camera.url} stopped delivering frames; reconnecting (try 1 in 0.5 s)" in lines
    assert any(line.startswith(f"livecam: stream {camera.url} is back after") for line in lines), lines
    frames, _ = read_video(out)
    assert len(frames) == 80 > before[0]  # more than the camera had sent before the drop


@pytest.mark.slow
def test_cli_gives_up_when_the_camera_is_gone(camera: FlakyCamera, lite0_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.avi"
    threading.Timer(6.0, setattr, (camera, "mode", "down")).start()
    done = _cli("--source", camera.url, "--model", str(lite0_onnx), "--output", str(out), "--no-show",
                "--reconnect", "1")
    assert done.returncode == 0, done.stderr
    assert any("stopped delivering frames; gave up reconnecting after" in line for line in _only_livecam_lines(done))
    frames, _ = read_video(out)
    assert len(frames) > 0
    assert f"wrote {out}" in done.stdout


def _cut(video: Path, path: Path, keep: float) -> Path:
    data = video.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _only_livecam_lines(done: subprocess.CompletedProcess) -> list[str]:
    """stderr holds livecam's own lines only, and no FFmpeg line went to stdout either."""
    assert "FFMPEG" not in done.stdout and "@ 0x" not in done.stdout, done.stdout
    stderr = done.stderr
    lines = stderr.strip().splitlines()
    assert lines and all(line.startswith("livecam") for line in lines), stderr
    return lines


@pytest.fixture(scope="module")
def cat_avi(tmp_path_factory: pytest.TempPathFactory, cat_video: Path) -> Path:
    """The cat clip as MJPG in AVI: 24 frames."""
    from tests.conftest import make_video

    frames, fps = read_video(cat_video)
    return make_video(tmp_path_factory.mktemp("avi") / "cat.avi", frames, fps)


@pytest.mark.slow
def test_cli_says_when_a_file_ended_early(cat_avi: Path, lite0_onnx: Path, tmp_path: Path) -> None:
    cut = _cut(cat_avi, tmp_path / "cut.avi", 0.6)
    out = tmp_path / "out.avi"
    done = _cli("--source", str(cut), "--model", str(lite0_onnx), "--output", str(out), "--no-show")
    assert done.returncode == 0, done.stderr
    frames, _ = read_video(out)
    assert 0 < len(frames) < 24
    lines = _only_livecam_lines(done)
    assert lines[-1] == f"livecam: video {cut}: the file ended after {len(frames)} of its 24 frames", lines


@pytest.mark.slow
def test_ffmpeg_lines_never_reach_the_terminal(cat_video: Path, cat_avi: Path, lite0_onnx: Path,
                                               tmp_path: Path) -> None:
    no_moov = _cut(cat_video, tmp_path / "no_moov.mp4", 0.5)  # mp4 keeps its index (moov) at the end
    done = _cli("--source", str(no_moov), "--no-show")
    assert done.returncode == 2
    assert _only_livecam_lines(done) == [
        f"livecam: error: could not read {no_moov} as a video; check that the file is a complete video "
        "(mp4, avi, mkv, ...)"]
    loud = _cli("--source", str(no_moov), "--no-show", "-vv")  # asked for: FFmpeg's own line is there
    assert loud.returncode == 2 and "moov atom not found" in loud.stderr

    data = bytearray(cat_avi.read_bytes())
    rng = np.random.default_rng(0)
    for at in range(4000, len(data), 997):  # damage the JPEG data of most frames
        data[at] = rng.integers(256)
    broken = tmp_path / "broken.avi"
    broken.write_bytes(bytes(data))
    done = _cli("--source", str(broken), "--model", str(lite0_onnx), "--output", str(tmp_path / "o.avi"),
                "--no-show")
    assert done.returncode == 0, done.stderr
    _only_livecam_lines(done)
    loud = _cli("--source", str(broken), "--model", str(lite0_onnx), "--output", str(tmp_path / "o2.avi"),
                "--no-show", "-vv")
    assert "[mjpeg @" in loud.stderr


def test_batch_is_refused_for_a_live_stream(camera: FlakyCamera, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from livecam.cli import main

    result = CliRunner().invoke(main, ["--source", camera.url, "--no-show", "--batch", "4", "--output",
                                       str(tmp_path / "o.mp4")])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("livecam: error: --batch 4 is for files and images; a camera or stream is "
                                     "explained one latest frame at a time (leave --batch out)")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_on_a_camera_that_never_sends_a_frame(camera: FlakyCamera) -> None:
    """Headers, then nothing: the open times out (5 s) into a one-line error, before any model loads."""
    camera.mode = "stall"
    start = time.monotonic()
    done = _cli("--source", camera.url, "--no-show", timeout=60)
    assert done.returncode == 2
    assert _only_livecam_lines(done) == [f"livecam: error: could not read the stream {camera.url}; check the URL "
                                         "and that the stream is running"]
    assert time.monotonic() - start < 30


class HangingCapture:
    """A stand-in for a camera driver whose read() blocks (V4L2 can; FFmpeg's streams time out instead)."""

    def __init__(self, hang: threading.Event) -> None:
        self.hang = hang
        self.released = False
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        self.reads += 1
        if self.reads > 3:
            self.hang.wait()  # until the test ends
        return True, stamp(self.reads)

    def release(self) -> None:
        self.released = True


def test_a_read_that_blocks_is_abandoned_to_a_new_connection(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    import livecam.sources.live as live

    caplog.set_level("WARNING", logger="livecam")
    hang = threading.Event()
    opened: list[HangingCapture] = []

    def open_live(_target: object, _timeout: float) -> HangingCapture:
        opened.append(HangingCapture(hang))
        return opened[-1]

    monkeypatch.setattr(live, "open_live", open_live)
    src = live.LiveSource(0, "camera 0", reconnect=30, timeout_s=0.5)
    got: list[int] = []

    def consume() -> None:  # each connection gives 3 frames, then its read blocks
        for frame in src:
            got.append(frame.index)
            if len(got) == 2:
                return

    consumer = threading.Thread(target=consume, daemon=True)
    deadline = time.monotonic() + 10  # the first connection's 3 frames are all read, before the iteration begins
    while opened[0].reads <= 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        consumer.start()
        consumer.join(timeout=20)
        assert not consumer.is_alive(), "the iteration hung on a blocked read"
        src.close()
    finally:
        hang.set()
    assert got == [0, 1] and len(opened) >= 2
    deadline = time.monotonic() + 10
    while not all(cap.released for cap in opened) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(cap.released for cap in opened)  # the abandoned ones too, once their read returned
    assert "camera 0: a read blocked for more than 0.5 s" in caplog.text
    assert "camera 0 stopped delivering frames; reconnecting (try 1 in 0.5 s)" in caplog.text
    assert "camera 0 is back after 1 try" in caplog.text
