"""Sources read whole, from the start to the end: a video file (or a recorded video at a URL), images.

A file's frames carry the decoder's presentation times, counted from the
first frame, so a variable-frame-rate file keeps its own rhythm in the log and
in the recording; a constant-rate file's frames are at exactly index / rate
(the container's clock rounds those by less than a tick). What the container
states about its length (read by PyAV from the header: a frame count, or a
duration) says whether a file ended early. Such sources always know their
rate: ``fps`` is a float here, never None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from livecam.errors import LivecamError, option
from livecam.sources.base import (DEFAULT_VIDEO_FPS, FALLBACK_TICK_S, Source, as_bgr, ended_early, frame_time,
                                  last_duration, quiet_opencv, read_stated)
from livecam.text import plural
from livecam.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_IMAGE_FPS = 2.0


class CaptureSource(Source):
    """A cv2.VideoCapture of a video file (or of a recorded video served by URL).

    The first frame is read when the source opens, so that a source that opens
    but cannot be decoded is reported at once. A file that ends before the
    frame count its container states says so in a warning.
    """

    fps: float

    def __init__(self, target: str, description: str, path: Path | None = None,
                 cap: cv2.VideoCapture | None = None) -> None:
        self.description = description
        self.path = path
        with quiet_opencv():
            self._cap = cv2.VideoCapture(target) if cap is None else cap
            ok = self._cap.isOpened()
            first = self._cap.read()[1] if ok else None
        if first is None:
            self._cap.release()
            raise LivecamError(video_error(target))
        self._first: tuple[np.ndarray, float] | None = (first, self._position())
        self.size = (first.shape[1], first.shape[0])
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.5 <= fps <= 1000 else DEFAULT_VIDEO_FPS
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._estimate = count if count > 0 else None  # OpenCV's: Matroska's is its length times its rate
        self.stated = read_stated(target)
        self.frame_count = (self.stated.frames if self.stated is not None and self.stated.frames
                            else self._estimate)

    def _position(self) -> float:
        """The decoder's presentation time of the frame just read, in seconds from the stream's start."""
        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0

    def _read(self) -> tuple[np.ndarray, float] | None:
        if self._first is not None:
            item, self._first = self._first, None
            return item
        ok, image = self._cap.read()
        return (image, self._position()) if ok and image is not None else None

    def __iter__(self) -> Iterator[Frame]:
        fps = self.fps
        tick = self.stated.tick if self.stated is not None else FALLBACK_TICK_S
        end = self.stated.end if self.stated is not None else None
        index, longest = 0, 0.0
        item = self._read()
        stamp = 0.0 if item is None else frame_time(0, item[1], fps, tick, None)
        while item is not None:
            after = self._read()  # one frame ahead: its time is where this one ends
            if after is not None:
                following = frame_time(index + 1, after[1], fps, tick, stamp)
                longest = max(longest, following - stamp)
                duration = following - stamp
            else:
                following, duration = stamp, last_duration(stamp, end, longest, fps)
            yield Frame(as_bgr(item[0]), index, stamp, duration=duration)
            index += 1
            item, stamp = after, following
        if index:
            why = ended_early(index, stamp, longest, fps, self.stated, self._estimate)
            if why is not None:
                log.warning("%s: %s", self.description, why)

    def close(self) -> None:
        self._cap.release()


def video_error(target: str) -> str:
    """The message for a file (or a recorded video's URL) that does not open as a video."""
    return f"could not read {target} as a video; check that the file is a complete video (mp4, avi, mkv, ...)"


class ImageSource(Source):
    """One image file or a folder of them, in natural name order."""

    fps: float

    def __init__(self, paths: list[Path], description: str, fps: float = DEFAULT_IMAGE_FPS) -> None:
        self.paths = paths
        self.description = description
        self.fps = fps
        self.frame_count = len(paths)
        self.path = paths[0] if len(paths) == 1 else None

    def _find_size(self) -> tuple[int, int] | None:
        """The first readable image's (width, height), read when the size is first asked for."""
        with quiet_opencv():
            for path in self.paths:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is not None:
                    return (image.shape[1], image.shape[0])
        return None

    def __iter__(self) -> Iterator[Frame]:
        index, fps = 0, float(self.fps or DEFAULT_IMAGE_FPS)
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping %s: not a readable image", path)
                continue
            yield Frame(image, index, index / fps, duration=1.0 / fps)
            index += 1


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def image_folder(folder: Path) -> ImageSource:
    """The images in ``folder``, in natural name order ("2.jpg" before "10.jpg"); a folder without one is refused."""
    images = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    paths = sorted(images, key=_natural_key)
    if not paths:
        raise LivecamError(
            f"the folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            f"point {option('source')} at a folder of images, a video or a camera index"
        )
    return ImageSource(paths, f"{plural(len(paths), 'image')} in {folder}")


def image_file(path: Path) -> ImageSource:
    """The one image at ``path``, checked to be readable now."""
    with quiet_opencv():
        readable = cv2.imread(str(path), cv2.IMREAD_COLOR) is not None
    if not readable:
        raise LivecamError(f"could not read {path} as an image; check that the file is a complete image")
    return ImageSource([path], f"image {path}")
