"""Variable-frame-rate files keep their times: in the log, in the recording, in annotate and its parts.

The files are written with PyAV, so every frame's presentation time is known: frames 20 ms and 100 ms apart
in turn, and one held for 400 ms, H.264 with B-frames (decoded out of order), in MP4 and in Matroska (which
states no frame count).
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from livecam.annotate.parts import ClipSource, join, plan_spans
from livecam.sinks.encode import time_base
from livecam.sinks import VideoFileSink, record_source
from livecam.sources import Stated, ended_early, frame_time, last_duration, open_source
from livecam.types import Annotated, Frame
from tests.conftest import moving_photos
from tests.conftest import annotate_cli as _annotate

GAPS = [0.02, 0.1] * 15 + [0.4] + [0.1, 0.02] * 17  # 66 frames over 4.3 s
TIMES = [round(sum(GAPS[:i]), 3) for i in range(len(GAPS) + 1)]
LAST = 1 / 30  # the last frame's duration in the files: a frame at the stream's stated rate (to MP4's clock)
END = TIMES[-1] + LAST
SIZE = (320, 240)


def vfr_video(path: Path, times: list[float] = TIMES, options: dict | None = None) -> Path:
    """``moving_photos`` at ``times`` (seconds), H.264 with B-frames, a keyframe every 16 frames (about 1 s)."""
    clock = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = clock
        stream.codec_context.options = options or {"bf": "2", "g": "16", "x264-params": "scenecut=0"}
        for t, image in zip(times, moving_photos(len(times), SIZE), strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round(t / clock), clock
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decoded_times(path: Path) -> tuple[list[float], float]:
    """Each frame's presentation time from the first (PyAV), and how long the file lasts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        times = [float((frame.pts - start) * stream.time_base) for frame in container.decode(stream)]
        return times, container.duration / 1e6


@pytest.fixture(scope="module", params=["mp4", "mkv"])
def vfr_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = vfr_video(tmp_path_factory.mktemp("vfr") / f"vfr.{request.param}")
    times, length = decoded_times(path)
    assert times == pytest.approx(TIMES, abs=1e-9) and length == pytest.approx(END, abs=1e-3)  # what it was given
    return path


# --- the rules, as pure functions ----------------------------------------------------------------------------------

def test_a_frame_time_is_the_decoders_but_a_constant_rate_keeps_index_over_rate() -> None:
    # Matroska counts in ms: 1/12 s is stored as 83 ms, and read back as 1/12 exactly
    assert frame_time(1, 0.083, 12.0, 0.001, 0.0) == 1 / 12
    assert frame_time(23, 1.9166666666666665, 12.0, 1 / 12288, 22 / 12) == 23 / 12  # float noise, MP4's clock
    assert frame_time(1, 0.02, 16.8, 0.001, 0.0) == 0.02  # a variable rate: the decoder's time
    assert frame_time(3, 0.14, 16.8, 0.001, 0.12) == 0.14
    # no times at all (raw H.264 reads 0 throughout): index / rate; a time going back: after the one before
    times: list[float] = []
    for i in range(5):
        times.append(frame_time(i, 0.0, 25.0, 0.001, times[-1] if times else None))
    assert times == [i / 25 for i in range(5)]
    assert frame_time(2, 0.5, 25.0, 0.001, 0.6) == pytest.approx(0.64)


def test_the_last_frame_lasts_until_the_stated_end_and_an_early_end_is_told_by_what_the_container_holds() -> None:
    assert last_duration(6.26, 6.293, 0.1, 16.8) == pytest.approx(0.033)
    assert last_duration(0.9, 2.0, 0.1, 10.0) == 0.1  # far before the stated end: the file was cut
    assert last_duration(1.0, None, 0.1, 10.0) == 0.1
    # Matroska states no count: its length says; OpenCV's count (length x rate) is not asked
    mkv = Stated(None, 6.293, 0.001)
    assert ended_early(106, 6.26, 0.1, 30.0, mkv, estimate=189) is None
    assert ended_early(45, 2.6, 0.1, 30.0, mkv, estimate=189) == "the file ended at 2.6 s of its 6.3 s"
    # a count: too few frames, and their times short of it
    avi = Stated(20, 1.0, 0.1)
    assert ended_early(10, 0.9, 0.1, 10.0, avi, None) == "the file ended after 10 of its 20 frames"
    assert ended_early(19, 1.8, 0.1, 10.0, avi, None) is None  # one short: a count may be an estimate
    # AVI counts slots of its rate, some empty where the source's rate varied: 5 frames in 13 slots, all there
    assert ended_early(5, 0.24, 0.1, 50.0, Stated(13, 0.26, 0.02), None) is None
    assert ended_early(5, 0.4, 0.1, 10.0, None, 20) == "the file ended after 5 of its 20 frames"  # no header


def test_a_timed_recording_counts_in_ticks_where_a_constant_rate_falls_whole() -> None:
    for fps in (12.0, 25.0, 29.97, 23.976, 16.84):
        rate = 1 / time_base(fps, "h264", ".mp4", timed=False)
        for codec in ("h264", "hevc", "mjpeg", "mp4v"):
            clock = time_base(fps, codec, ".mkv", timed=True)
            assert (1 / (rate * clock)).denominator == 1  # a frame is a whole number of ticks
            ticks = 1 / clock
            assert ticks <= 65535 if codec == "mp4v" else ticks >= 90_000  # MPEG-4 Part 2's limit
        assert time_base(fps, "h264", ".avi", timed=True) == 1 / rate  # AVI: slots of the rate


# --- sources --------------------------------------------------------------------------------------------------------

def test_a_vfr_file_gives_its_frames_presentation_times_and_durations(vfr_file: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="livecam")
    with open_source(str(vfr_file)) as src:
        frames = list(src)
    assert [f.index for f in frames] == list(range(len(TIMES)))
    assert [f.timestamp for f in frames] == pytest.approx(TIMES, abs=1e-9)
    assert [f.duration for f in frames] == pytest.approx([*GAPS, LAST], abs=1e-3)  # Matroska's last: in ms
    assert [f.duration for f in frames[:-1]] == pytest.approx(GAPS, abs=1e-9)
    assert caplog.messages == []  # nothing "ended early"
    with av.open(str(vfr_file)) as container:  # the pixels are the decoder's, in presentation order
        reference = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert all(np.array_equal(f.image, r) for f, r in zip(frames, reference, strict=True))


def test_a_cut_matroska_file_says_it_ended_early(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = vfr_video(tmp_path / "whole.mkv").read_bytes()  # (an MP4 cut short loses its index: it does not open)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # the header keeps the whole length
    caplog.set_level("WARNING", logger="livecam")
    with open_source(str(cut)) as src:
        frames = list(src)
    assert 0 < len(frames) < len(TIMES)
    assert caplog.messages == [f"video {cut}: the file ended at {frames[-1].timestamp:.1f} s of its {END:.1f} s"]
    assert frames[-1].duration == pytest.approx(1 / src.fps)  # not stretched to the stated end


def test_the_spans_of_a_vfr_file_keep_its_times(vfr_file: Path) -> None:
    spans = plan_spans(vfr_file, 1.0)
    assert len(spans) >= 3
    frames = []
    for span in spans:
        with ClipSource(vfr_file, span) as source:
            frames.extend(source)
    assert [f.timestamp for f in frames] == pytest.approx(TIMES, abs=1e-9)
    assert [f.duration for f in frames[:-1]] == pytest.approx(GAPS, abs=1e-9)  # a span's last: to the next
    assert frames[-1].duration == pytest.approx(LAST, abs=1e-3)


# --- recording ------------------------------------------------------------------------------------------------------

def _record(path: Path, frames: list[Frame], **kwargs) -> VideoFileSink:
    with VideoFileSink(path, fps=16.8, keep_times=True, **kwargs) as sink:
        for frame in frames:
            sink.write(Annotated(frame.image, None, frame))
    return sink


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", "h264"), (".mkv", "h264"), (".mov", "hevc"),
                                               (".mp4", "mp4v"), (".mkv", "mjpeg")])
def test_a_recording_keeps_the_times_it_is_given(tmp_path: Path, suffix: str, codec: str) -> None:
    images = moving_photos(len(TIMES), SIZE)
    # the source's times from 1.5 s (a part of a file): the recording starts at its first frame
    frames = [Frame(image, i, 1.5 + t, duration=d) for i, (image, t, d) in
              enumerate(zip(images, TIMES, [*GAPS, 0.25], strict=True))]
    sink = _record(tmp_path / f"out{suffix}", frames, codec=codec)
    times, length = decoded_times(sink.path)
    assert times == pytest.approx(TIMES, abs=1e-4)
    assert length == pytest.approx(TIMES[-1] + 0.25, abs=1e-3)  # the last frame lasts as long as it said
    assert sink.fps == pytest.approx(len(TIMES) / (TIMES[-1] + 0.25))  # what the summary line reports


def test_an_avi_recording_puts_frames_in_the_nearest_free_slot(tmp_path: Path) -> None:
    images = moving_photos(len(TIMES), SIZE)
    frames = [Frame(image, i, t, duration=d) for i, (image, t, d) in
              enumerate(zip(images, TIMES, [*GAPS, LAST], strict=True))]
    with VideoFileSink(tmp_path / "out.avi", fps=50.0, keep_times=True) as sink:  # 20 ms slots
        for frame in frames:
            sink.write(Annotated(frame.image, None, frame))
    times, length = decoded_times(sink.path)
    assert times == pytest.approx(TIMES, abs=0.0101) and len(set(times)) == len(TIMES)
    assert length == pytest.approx(END, abs=0.03)


def test_parts_of_a_vfr_file_join_at_their_times(vfr_file: Path, tmp_path: Path) -> None:
    parts = []
    for i, span in enumerate(plan_spans(vfr_file, 1.0)):
        with ClipSource(vfr_file, span) as source, \
                record_source(source, tmp_path / f"part{i}.mp4") as sink:
            for frame in source:
                sink.write(Annotated(frame.image, None, frame))
        parts.append(sink.path)
    assert join(parts, tmp_path / "joined.mp4") == len(TIMES)
    times, length = decoded_times(tmp_path / "joined.mp4")
    assert times == pytest.approx(TIMES, abs=1e-4) and length == pytest.approx(END, abs=1e-3)


# --- end to end -----------------------------------------------------------------------------------------------------

def test_run_logs_and_records_the_source_times(vfr_file: Path, lite0_graph: Path, tmp_path: Path) -> None:
    out, log = tmp_path / f"out{vfr_file.suffix}", tmp_path / "frames.jsonl"
    done = subprocess.run([sys.executable, "-m", "livecam", "--source", str(vfr_file), "--model", str(lite0_graph),
                           "--output", str(out), "--log", str(log), "--no-show"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ended" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["time"] for line in lines] == pytest.approx(TIMES, abs=1e-6)
    times, length = decoded_times(out)
    assert times == pytest.approx(TIMES, abs=1e-4)
    assert length == pytest.approx(END, abs=1e-3)  # as long as the source
    assert f"wrote {out} ({len(TIMES)} frames, 320x240, {len(TIMES) / END:.1f} fps)" in done.stdout


def test_run_with_fps_retimes_the_recording_to_that_rate(tmp_path: Path, lite0_graph: Path) -> None:
    source = vfr_video(tmp_path / "vfr.mp4", TIMES[:12])
    out = tmp_path / "out.mp4"
    done = subprocess.run([sys.executable, "-m", "livecam", "--source", str(source), "--model", str(lite0_graph),
                           "--output", str(out), "--fps", "10", "--no-show"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    times, length = decoded_times(out)
    assert times == pytest.approx([i / 10 for i in range(12)], abs=1e-6) and length == pytest.approx(1.2)


def test_annotate_whole_and_in_parts_keeps_the_source_times(tmp_path: Path, lite0_graph: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    vfr_video(root / "bframes.mp4")
    vfr_video(root / "camera.mkv")
    for name, extra in (("whole", ()), ("parts", ("--chunk-seconds", "1", "--jobs", "2"))):
        done = _annotate(root, "--out-dir", tmp_path / name, "--model", lite0_graph, *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ended" not in done.stderr, done.stderr
        chunks = [json.loads(line)["chunks"] for line in (tmp_path / name / "manifest.jsonl").read_text().splitlines()]
        assert all(n >= 3 for n in chunks) if extra else chunks == [1, 1], chunks  # both files were cut, or neither
        for output in ("bframes.mp4", "camera.mp4"):
            times, length = decoded_times(tmp_path / name / output)
            assert times == pytest.approx(TIMES, abs=1e-4), (name, output)
            assert length == pytest.approx(END, abs=1e-3), (name, output)
