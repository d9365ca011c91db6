"""Files read whole: videos (also one served by URL), images and folders of them, and a file that ends early."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from livecam.errors import LivecamError
from livecam.sinks import write_frames
from livecam.sources import ImageSource, open_source
from tests.conftest import read_video


def test_video_file_frames_and_metadata(cat_video: Path) -> None:
    expected, fps = read_video(cat_video)
    with open_source(str(cat_video)) as src:
        frames = list(src)
        assert not src.is_live and src.fps == pytest.approx(fps) and src.frame_count == len(expected)
        assert src.path == cat_video
    assert len(frames) == len(expected)
    assert [f.index for f in frames] == list(range(len(expected)))
    assert all(np.array_equal(a.image, b) for a, b in zip(frames, expected, strict=True))
    assert frames[3].timestamp == pytest.approx(3 / fps)


def test_image_folder_in_natural_order(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageSource)
    assert [p.name for p in src.paths] == ["img1.png", "img2.png", "img10.png"]
    assert [int(f.image[0, 0, 0]) for f in src] == [1, 2, 10]


def test_single_image_and_unreadable_images(tmp_path: Path) -> None:
    good = tmp_path / "a.jpg"
    cv2.imwrite(str(good), np.zeros((16, 16, 3), np.uint8))
    assert len(list(open_source(str(good)))) == 1
    broken = tmp_path / "b.jpg"
    broken.write_bytes(good.read_bytes()[:20])
    with pytest.raises(LivecamError, match="could not read .*b.jpg as an image"):
        open_source(str(broken))


def test_unreadable_video_and_empty_folder(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"this is not a video" * 100)
    with pytest.raises(LivecamError, match="could not read .*fake.mp4 as a video"):
        open_source(str(fake))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LivecamError, match="holds no images"):
        open_source(str(empty))


@pytest.fixture()
def http_server(tmp_path: Path):
    """A local HTTP server on 127.0.0.1 serving tmp_path, for stream sources."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_video_served_by_url_is_read_whole_like_a_file(tmp_path: Path, http_server: str) -> None:
    """A URL whose container states a length is a recorded video: every frame, in order, no reconnecting."""
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20)]
    write_frames(tmp_path / "stream.avi", frames, 10.0)  # MJPG in AVI: readable without seeking
    with open_source(f"{http_server}/stream.avi") as src:
        got = list(src)
        assert not src.is_live and src.fps == pytest.approx(10.0) and src.frame_count == 20
    assert [round(f.image.mean() / 10) for f in got] == list(range(20))
    with pytest.raises(LivecamError, match="could not read the stream"):
        open_source(f"{http_server}/missing.avi")


def test_a_file_that_ends_early_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 128, 3), np.uint8) for _ in range(20)]  # noise: big JPEGs, a small header
    data = write_frames(tmp_path / "whole.avi", frames, 10.0).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    caplog.set_level("WARNING", logger="livecam")
    with open_source(str(cut)) as src:
        got = list(src)
    assert 0 < len(got) < 20
    assert caplog.messages == [f"video {cut}: the file ended after {len(got)} of its 20 frames"]
    caplog.clear()
    with open_source(str(tmp_path / "whole.avi")) as src:
        assert len(list(src)) == 20
    assert caplog.messages == []
