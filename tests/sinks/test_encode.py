"""Recordings that play everywhere: H.264 through PyAV, other codecs on request, and a full disk survived."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from livecam.sinks.encode import MIN_SIDE, VideoEncoder, frame_rate, resolve_codec
from livecam.errors import LivecamError
from livecam.sinks import VideoFileSink, record_source
from livecam.sources import open_source
from livecam.types import Annotated, Frame
from tests.conftest import moving_photos, photo_bgr


def _record(path: Path, frames: list[np.ndarray], fps: float = 25.0, **kwargs) -> VideoFileSink:
    with VideoFileSink(path, fps=fps, **kwargs) as sink:
        for i, image in enumerate(frames):
            sink.write(Annotated(image, None, Frame(image, i, i / fps)))
    return sink


def probe(path: Path) -> dict:
    """What PyAV finds in a file: codec, pixel format, rate, size, and the frames it decodes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "rate": stream.average_rate, "size": (stream.width, stream.height),
                "frames": [frame.to_ndarray(format="bgr24") for frame in decoded],
                "times": [float(frame.time) for frame in decoded]}


def top_level_boxes(path: Path) -> list[str]:
    """The MP4 file's top-level box types, in order (ISO/IEC 14496-12: 32-bit size, 4-char type)."""
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        boxes.append(data[offset + 4:offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        if size < 8:
            break
        offset += size
    return boxes


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_video_files_are_h264_yuv420p_at_the_source_rate(tmp_path: Path, suffix: str) -> None:
    frames = moving_photos(40, (322, 240))  # an odd-free size: every frame kept whole
    path = tmp_path / f"out{suffix}"
    _record(path, frames, fps=29.97)
    info = probe(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["rate"] == frame_rate(29.97) == pytest.approx(29.97, abs=1e-3)
    assert info["size"] == (322, 240) and len(info["frames"]) == 40
    # each frame at its time from 0 (a B-frame delay would shift them all by 2 frames); .mkv counts in ms
    assert info["times"] == pytest.approx([i * 1001 / 30000 for i in range(40)], abs=1e-3)
    # the pictures are the ones written (lossy, so close, not equal), in order
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(info["frames"], frames, strict=True)]
    assert max(errors) < 6
    assert np.abs(info["frames"][5].astype(int) - frames[25]).mean() > 3 * max(errors)


def test_mp4_has_its_index_at_the_front_and_is_fragmented(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    _record(path, moving_photos(120), fps=25.0)
    boxes = top_level_boxes(path)
    assert boxes[:2] == ["ftyp", "moov"]  # the index first: players start at once, browsers stream it
    assert boxes.count("moof") >= 2  # a fragment per keyframe (every 2 s at the most): 120 frames at 25 fps
    assert boxes.index("moov") < boxes.index("mdat")


def test_a_recording_cut_short_still_plays_its_whole_fragments(tmp_path: Path) -> None:
    """What the disk-full and the killed-process cases leave: a file that ends mid-fragment."""
    path = tmp_path / "out.mp4"
    _record(path, moving_photos(150), fps=25.0)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    frames = []
    with av.open(str(cut)) as container:
        try:
            frames.extend(container.decode(video=0))
        except av.error.FFmpegError:
            pass  # the torn last fragment
    assert 50 <= len(frames) < 150


@pytest.mark.parametrize(("suffix", "codec", "name", "pix_fmt"), [
    (".avi", None, "mjpeg", "yuvj420p"),
    (".mp4", "hevc", "hevc", "yuv420p"),
    (".mkv", "mjpeg", "mjpeg", "yuvj420p"),
    (".mp4", "mp4v", "mpeg4", "yuv420p"),
    (".avi", "h264", "h264", "yuv420p"),
])
def test_other_codecs_on_request(tmp_path: Path, suffix: str, codec: str | None, name: str, pix_fmt: str) -> None:
    path = tmp_path / f"out{suffix}"
    frames = moving_photos(12)
    _record(path, frames, fps=10.0, codec=codec)
    info = probe(path)
    assert (info["codec"], info["pix_fmt"], len(info["frames"])) == (name, pix_fmt, 12)
    assert info["rate"] == 10
    assert np.abs(info["frames"][3].astype(int) - frames[3]).mean() < 8


def test_crf_trades_size_for_quality(tmp_path: Path) -> None:
    frames = moving_photos(30)
    sizes, errors = {}, {}
    for crf in (18, 35):
        path = _record(tmp_path / f"crf{crf}.mp4", frames, crf=crf).path
        sizes[crf] = path.stat().st_size
        decoded = probe(path)["frames"]
        errors[crf] = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(decoded, frames, strict=True)])
    assert sizes[18] > 2 * sizes[35] and errors[18] < errors[35]


def test_codec_choices_that_cannot_work_are_refused(tmp_path: Path) -> None:
    assert resolve_codec(".MP4", None, None) == "h264" and resolve_codec(".avi", None, None) == "mjpeg"
    with pytest.raises(LivecamError, match="^codec hevc cannot go in a .avi file; use .mp4, .mov, .mkv"):
        VideoFileSink(tmp_path / "out.avi", fps=10.0, codec="hevc")
    with pytest.raises(LivecamError, match="^crf sets the quality of h264 and hevc, not of mjpeg"):
        VideoFileSink(tmp_path / "out.avi", fps=10.0, crf=20)
    assert not list(tmp_path.iterdir())  # nothing left behind


@pytest.mark.parametrize("codec", ["h264", "hevc", "mjpeg", "mp4v"])
def test_the_smallest_frames_are_what_each_encoder_opens_with(tmp_path: Path, codec: str) -> None:
    suffix = ".mkv"
    least = MIN_SIDE[codec]
    photo = photo_bgr("chelsea")
    encoder = VideoEncoder(tmp_path / f"least{suffix}", (least, least), 10.0, codec)
    for _ in range(3):
        encoder.write(cv2.resize(photo, (least, least), interpolation=cv2.INTER_AREA))
    encoder.close()
    assert probe(encoder.path)["size"] == (least, least) and len(probe(encoder.path)["frames"]) == 3
    if least > 2:  # the encoder itself refuses the next even size down (the recorder gives even sizes only)
        side = least - 2
        smaller = VideoEncoder(tmp_path / f"smaller{suffix}", (side, side), 10.0, codec)
        with pytest.raises(av.FFmpegError, match="avcodec_open2"):
            for _ in range(3):
                smaller.write(cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA))
            smaller.close()
        smaller.abandon()

    # the recorder records even sizes: the least it takes is the least even one; below that, one line and no file
    even = max(least, 2)
    sink = _record(tmp_path / "even.mp4" if codec != "mjpeg" else tmp_path / "even.avi",
                   [cv2.resize(photo, (even + 1, even + 1))] * 2, fps=10.0, codec=codec)
    assert sink.size == (even, even)
    folder = tmp_path / "refused"
    folder.mkdir()
    with pytest.raises(LivecamError, match=rf"the frames are {even - 1}x{even - 1} pixels and {codec} needs at least "
                                           rf"{even}x{even}"):
        _record(folder / ("out.avi" if codec == "mjpeg" else "out.mp4"), [photo[: even - 1, : even - 1]] * 2,
                fps=10.0, codec=codec)
    assert not list(folder.iterdir())


def test_frames_too_small_to_record_are_refused_before_any_file(tmp_path: Path, lite0_graph: Path) -> None:
    cv2.imwrite(str(tmp_path / "one.png"), np.full((1, 1, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "ten.png"), cv2.resize(photo_bgr("chelsea"), (10, 10), interpolation=cv2.INTER_AREA))
    with open_source(str(tmp_path / "ten.png")) as src, pytest.raises(LivecamError, match="pass codec h264"):
        record_source(src, tmp_path / "out.mp4", codec="hevc")  # the size an image has is known when it opens
    for image, extra, message in (
            ("one.png", (), "the frames are 1x1 pixels and h264 needs at least 2x2; give a larger source, or leave "
                            "out --output"),
            ("ten.png", ("--codec", "hevc"), "the frames are 10x10 pixels and hevc needs at least 16x16; pass --codec "
                                             "h264 (from 2x2), or give a larger source")):
        done = subprocess.run([sys.executable, "-m", "livecam", "--source", str(tmp_path / image), "--model",
                               str(lite0_graph), "--output", str(tmp_path / "o.mp4"), "--no-show", *extra],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [f"livecam: error: cannot record {tmp_path / 'o.mp4'}: {message}"], \
            done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "ten.png"]  # no recording, no partial file


def _limit_file_size(limit: int):
    def limit_it() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_it


def test_a_full_disk_stops_the_run_and_keeps_a_playable_recording(tmp_path: Path, long_video: Path,
                                                                   lite0_graph: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "livecam", "--model", str(lite0_graph), "--source", str(long_video),
         "--output", str(out), "--no-show"],
        capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(300_000))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert lines[-1].startswith("livecam: error: the disk is full: could not write"), proc.stderr
    assert "Traceback" not in proc.stderr
    written = int(lines[-1].split("stopped after ")[1].split()[0])
    assert 0 < written < 120
    assert out.stat().st_size <= 300_000 and not list(tmp_path.glob(".*partial*"))
    info = probe(out)  # cut back to its last whole fragment: every frame left decodes, at its time
    assert info["codec"] == "h264" and info["size"] == (320, 240)
    # all but the frames of the fragment torn on disk and of the one still in memory (2 s at 25 fps each, at most)
    assert 0 < len(info["frames"]) <= written and len(info["frames"]) >= written - 100
    assert info["times"] == pytest.approx([i / 25 for i in range(len(info["frames"]))], abs=1e-5)


def test_recording_through_the_cli_with_a_codec(tmp_path: Path, cat_video: Path, lite0_graph: Path) -> None:
    out = tmp_path / "out.mkv"
    proc = subprocess.run([sys.executable, "-m", "livecam", "--model", str(lite0_graph), "--source", str(cat_video),
                           "--output", str(out), "--no-show", "--codec", "hevc", "--crf", "30"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "x265" not in proc.stderr and "libx265" not in proc.stderr  # the encoder's own chatter stays quiet
    info = probe(out)
    assert info["codec"] == "hevc" and len(info["frames"]) == 24 and info["rate"] == 12


def test_an_h264_recording_plays_in_chromium(tmp_path: Path) -> None:
    """The point of H.264: a <video> element in a real browser plays the recording (where the build decodes it)."""
    import functools
    import http.server
    import threading

    from tests.conftest import chromium_page, wait_until

    frames = moving_photos(50)
    _record(tmp_path / "out.mp4", frames, fps=25.0)
    (tmp_path / "index.html").write_text('<video id="v" src="out.mp4" muted playsinline></video>'
                                         '<canvas id="c" width="320" height="240"></canvas>')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with chromium_page() as page:
            page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
            if not page.evaluate("document.getElementById('v').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')"):
                pytest.skip("this Chromium build does not decode H.264")
            wait_until(page, "document.getElementById('v').readyState >= 2")
            width, height, duration = page.evaluate("[v.videoWidth, v.videoHeight, v.duration]")
            assert (width, height) == (320, 240) and duration == pytest.approx(2.0, abs=0.05)
            # the picture the browser decodes is the first frame written
            pixels = page.evaluate("""(() => {
                const ctx = document.getElementById('c').getContext('2d');
                ctx.drawImage(document.getElementById('v'), 0, 0);
                return Array.from(ctx.getImageData(0, 0, 320, 240).data);
            })()""")
            rgba = np.asarray(pixels, np.uint8).reshape(240, 320, 4)
            assert np.abs(rgba[..., 2::-1].astype(int) - frames[0]).mean() < 8  # RGBA -> BGR
            page.evaluate("document.getElementById('v').play()")
            wait_until(page, "document.getElementById('v').currentTime > 0.5")  # it plays on
    finally:
        server.shutdown()
