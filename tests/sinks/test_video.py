"""The video file sink: complete files, measured rates, letterboxed frames, and no lost data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from livecam.errors import LivecamError
from livecam.sinks import VideoFileSink, letterbox, measured_fps
from livecam.sources import Frame
from tests.conftest import photo_bgr, read_video


def _annotated(i: int, stamp: float, size=(64, 48)) -> SimpleNamespace:
    w, h = size
    image = np.full((h, w, 3), (i * 10) % 256, np.uint8)
    return SimpleNamespace(image=image, frame=Frame(image, i, stamp))


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv", ".mov"])
def test_recording_holds_every_frame(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    with VideoFileSink(path, fps=12.0) as sink:
        for i in range(15):
            sink.write(_annotated(i, i / 12.0))
    frames, fps = read_video(path)
    assert len(frames) == 15 and frames[0].shape == (48, 64, 3) and fps == pytest.approx(12.0)
    assert abs(int(frames[7].mean()) - 70) <= 3
    assert not list(tmp_path.glob(".*partial*"))


def test_live_sources_record_at_the_measured_rate(tmp_path: Path) -> None:
    path = tmp_path / "live.mp4"
    with VideoFileSink(path, fps=None) as sink:
        for i in range(30):
            sink.write(_annotated(i, 0.5 + i / 7.5))  # a camera delivering 7.5 frames per second
    frames, fps = read_video(path)
    assert len(frames) == 30 and fps == pytest.approx(7.5, rel=0.02)
    assert measured_fps([0.0, 0.1, 0.2]) == pytest.approx(10.0)
    assert measured_fps([1.0]) == 25.0


def _pillow_pad(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference: Pillow's ImageOps.pad (fit inside, keep the aspect ratio, centre on black)."""
    from PIL import Image, ImageOps

    method = Image.Resampling.BOX if image.shape[1] > size[0] or image.shape[0] > size[1] else \
        Image.Resampling.BILINEAR
    return np.asarray(ImageOps.pad(Image.fromarray(image), size, method=method, color=(0, 0, 0)))


@pytest.mark.parametrize(("source", "target"), [((451, 300), (512, 512)), ((300, 451), (512, 512)),
                                                ((100, 30), (64, 48)), ((640, 480), (320, 240)),
                                                ((33, 77), (200, 100)), ((341, 512), (512, 512))])
def test_letterbox_fits_an_image_inside_keeping_its_shape_as_pillow_does(source: tuple[int, int],
                                                                          target: tuple[int, int]) -> None:
    import cv2

    photo = np.ascontiguousarray(cv2.resize(photo_bgr("astronaut"), source, interpolation=cv2.INTER_AREA))
    white = np.full_like(photo, 255)
    assert np.array_equal(letterbox(white, target), _pillow_pad(white, target))  # the same box, to the pixel
    ours, reference = letterbox(photo, target), _pillow_pad(photo, target)
    assert ours.shape == (target[1], target[0], 3) and ours.dtype == np.uint8
    inside = _pillow_pad(white, target) > 0
    # resampled alike (by OpenCV's filters, not Pillow's): far nearer than the same picture two pixels off
    error = np.abs(ours.astype(int) - reference)[inside].mean()
    assert error < 0.25 * np.abs(np.roll(ours, 2, axis=1).astype(int) - reference)[inside].mean()
    assert error < (6 if min(source) < 50 else 0.5)
    assert not ours[~inside].any()


def test_frames_of_another_size_are_letterboxed_not_stretched(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "mixed.mp4"
    square = np.ascontiguousarray(cv2.resize(photo_bgr("coffee"), (512, 512), interpolation=cv2.INTER_AREA))
    wide = np.ascontiguousarray(cv2.resize(photo_bgr("astronaut"), (451, 300), interpolation=cv2.INTER_AREA))
    with VideoFileSink(path, fps=5.0) as sink:
        for i, image in enumerate((square, wide)):
            sink.write(SimpleNamespace(image=image, frame=Frame(image, i, i / 5)))
    frames, _ = read_video(path)
    assert [f.shape for f in frames] == [(512, 512, 3), (512, 512, 3)]  # the first frame's size
    expected = letterbox(wide, (512, 512))  # 512x341, with black bands of 85 and 86 rows
    assert np.abs(frames[1].astype(int) - expected).mean() < 4
    assert frames[1][:80].max() < 20 and frames[1][-80:].max() < 20
    assert np.abs(frames[1].astype(int) - cv2.resize(wide, (512, 512))).mean() > 20  # not stretched


def test_odd_sizes_drop_the_last_column(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with VideoFileSink(path, fps=5.0) as sink:
        sink.write(_annotated(0, 0.0, (65, 49)))
    assert sink.size == (64, 48)
    assert read_video(path)[0][0].shape == (48, 64, 3)


def test_existing_files_are_kept_until_a_run_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"the user's precious video")
    with pytest.raises(LivecamError, match="already exists; pass overwrite"):
        VideoFileSink(path, fps=10.0)
    sink = VideoFileSink(path, fps=10.0, overwrite=True)
    sink.write(_annotated(0, 0.0))
    assert path.read_bytes() == b"the user's precious video"  # not yet replaced
    sink.close()
    assert len(read_video(path)[0]) == 1
    # a run that writes no frame leaves the old file alone
    path.write_bytes(b"again")
    VideoFileSink(path, fps=10.0, overwrite=True).close()
    assert path.read_bytes() == b"again"
    # a recording given up (livecam annotate: a file that did not go through whole) leaves it alone too
    sink = VideoFileSink(path, fps=10.0, overwrite=True)
    for i in range(3):
        sink.write(_annotated(i, i / 10))
    sink.discard()
    sink.close()
    assert path.read_bytes() == b"again" and not list(tmp_path.glob(".*partial*"))


def test_output_paths_that_cannot_work(tmp_path: Path) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    cases = [
        (tmp_path / "out.gif", "must name a file ending in"),
        (tmp_path / "missing" / "out.mp4", "the folder .* does not exist"),
        (afile / "out.mp4", "the folder .* does not exist"),
        (tmp_path, "is a folder"),
    ]
    for path, message in cases:
        with pytest.raises(LivecamError, match=message):
            VideoFileSink(path, fps=10.0)
    source = tmp_path / "in.mp4"
    source.write_bytes(b"input")
    with pytest.raises(LivecamError, match="is an input of this command"):
        VideoFileSink(source, fps=10.0, overwrite=True, source_path=source)
    assert source.read_bytes() == b"input"
