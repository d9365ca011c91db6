"""Where frames come from: webcams, video files, streams, images, the demo clip.

``open_source(spec)`` turns what the user typed after ``--source`` into a
:class:`Source`, an iterable of :class:`Frame` (BGR uint8), checking up front
that it can be read, so that a bad source is a one-line error before any model
is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from livecam.demo import demo_clip_path
from livecam.errors import LivecamError
from livecam.types import Frame

__all__ = ["CaptureSource", "Frame", "ImageSource", "Source", "open_source", "spread_frames"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
DEFAULT_IMAGE_FPS = 2.0
DEFAULT_VIDEO_FPS = 25.0


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log lines (probing a camera prints several)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class Source:
    """An iterable of frames with what the sinks need to know about it."""

    description: str = ""
    fps: float | None = None  # the nominal rate; None for live sources (measure it)
    frame_count: int | None = None  # None when unknown (live sources)
    is_live: bool = False
    path: Path | None = None  # the file read, if any

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureSource(Source):
    """A cv2.VideoCapture: a video file, a camera index or a stream URL.

    The first frame is read when the source opens, so that a source that opens
    but cannot be decoded is reported at once.
    """

    def __init__(self, target: str | int, description: str, is_live: bool, path: Path | None = None) -> None:
        self.description = description
        self.is_live = is_live
        self.path = path
        with quiet_opencv():
            self._cap = cv2.VideoCapture(target)
            ok = self._cap.isOpened()
            first = self._cap.read()[1] if ok else None
        if first is None:
            self._cap.release()
            raise LivecamError(self._open_error(target))
        self._first: np.ndarray | None = first
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if is_live:
            self.fps = None
        else:
            self.fps = fps if 0.5 <= fps <= 1000 else DEFAULT_VIDEO_FPS
            count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frame_count = count if count > 0 else None

    def _open_error(self, target: str | int) -> str:
        if isinstance(target, int):
            return (
                f"camera {target} could not be opened; check that it is connected and not in use, "
                "or try another index (--source 1)"
            )
        if self.is_live:
            return f"could not read the stream {target}; check the URL and that the stream is running"
        return f"could not read {target} as a video; check that the file is a complete video (mp4, avi, mkv, ...)"

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        start = time.monotonic()
        while True:
            if self._first is not None:
                image, self._first = self._first, None
            else:
                ok, image = self._cap.read()
                if not ok or image is None:
                    return
            stamp = time.monotonic() - start if self.is_live else index / (self.fps or DEFAULT_VIDEO_FPS)
            yield Frame(_as_bgr(image), index, stamp)
            index += 1

    def close(self) -> None:
        self._cap.release()


class ImageSource(Source):
    """One image file or a folder of them, in natural name order."""

    def __init__(self, paths: list[Path], description: str, fps: float = DEFAULT_IMAGE_FPS) -> None:
        self.paths = paths
        self.description = description
        self.fps = fps
        self.frame_count = len(paths)
        self.path = paths[0] if len(paths) == 1 else None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping %s: not a readable image", path)
                continue
            yield Frame(image, index, index / self.fps)
            index += 1


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _image_folder(folder: Path) -> ImageSource:
    images = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    paths = sorted(images, key=_natural_key)
    if not paths:
        raise LivecamError(
            f"the folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "point --source at a folder of images, a video or a camera index"
        )
    return ImageSource(paths, f"{len(paths)} images in {folder}")


def open_source(spec: str) -> Source:
    """Open what ``--source`` names: a camera index, ``demo``, a URL, a video, an image or a folder."""
    text = str(spec).strip()
    if not text:
        raise LivecamError(
            "--source is empty; give a camera index (0), a video file, a folder of images, a URL or 'demo'"
        )
    if text.isdigit():
        return CaptureSource(int(text), f"camera {text}", is_live=True)
    if text.lower() == "demo":
        path = demo_clip_path()
        return CaptureSource(str(path), f"the built-in demo clip ({path})", is_live=False, path=path)
    if text.lower().startswith(STREAM_PREFIXES):
        return CaptureSource(text, f"stream {text}", is_live=True)
    path = Path(text).expanduser()
    if path.is_dir():
        return _image_folder(path)
    if not path.exists():
        raise LivecamError(
            f"{text} does not exist; give a camera index (0), a video file, a folder of images, a URL or 'demo'"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        with quiet_opencv():
            readable = cv2.imread(str(path), cv2.IMREAD_COLOR) is not None
        if not readable:
            raise LivecamError(f"could not read {path} as an image; check that the file is a complete image")
        return ImageSource([path], f"image {path}")
    return CaptureSource(str(path), f"video {path}", is_live=False, path=path)


def spread_frames(source: Source, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a source of known length, else its first ``count``."""
    total = source.frame_count
    wanted = None if not total or total <= count else {round(i * (total - 1) / (count - 1)) if count > 1 else 0
                                                        for i in range(count)}
    images = []
    for frame in source:
        if wanted is None or frame.index in wanted:
            images.append(frame.image)
        if len(images) >= count:
            break
    if not images:
        raise LivecamError(f"{source.description} gave no frames")
    return images
