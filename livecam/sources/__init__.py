"""Where frames come from: webcams, video files, streams, images, the demo clip.

:func:`open_source` turns what the user names as the source into a
:class:`Source`, an iterable of :class:`Frame` (BGR uint8), checking up front
that it can be read, so that a bad source is a one-line error before any model
is loaded. The sources themselves live by kind: :mod:`livecam.sources.files`
(a video read whole, images), :mod:`livecam.sources.live` (cameras and
streams, which reconnect), :mod:`livecam.sources.demo` (the built-in clip);
:mod:`livecam.sources.base` holds what they share.
"""

from __future__ import annotations

import contextlib
import logging
import stat
from pathlib import Path

import cv2
import numpy as np

from livecam.errors import LivecamError, option
from livecam.sources.base import (DEFAULT_TIMEOUT_S, DEFAULT_VIDEO_FPS, Source, Stated, ended_early, frame_time,
                                  interruptible, last_duration, stated_of)
from livecam.sources.demo import demo_clip_path
from livecam.sources.files import IMAGE_SUFFIXES, CaptureSource, ImageSource, image_file, image_folder
from livecam.sources.live import DEFAULT_RECONNECT_S, STREAM_PREFIXES, LiveSource, open_live
from livecam.types import Frame

__all__ = ["DEFAULT_VIDEO_FPS", "CaptureSource", "Frame", "ImageSource", "LiveSource", "Source", "Stated",
           "ended_early", "frame_time", "last_duration", "open_source", "spread_frames", "spread_indices",
           "stated_of"]

log = logging.getLogger(__name__)

_WHAT_TO_GIVE = "give a camera index (0), a video file, a folder of images, a URL or 'demo'"


def open_source(spec: str, reconnect: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Source:
    """Open a source of frames, checked to give its first frame before any model loads.

    ``spec`` is read in this order: a camera index (``"0"``), ``"demo"`` (the
    built-in clip, made at first use), a URL (``rtsp://``, ``http://``, ...: a
    live stream, or read whole as a file when its container states a length),
    a folder of images (in natural name order), an image file, else a video
    file. Opening can block in FFmpeg or a driver for as long as they like (a
    named pipe waits for its writer), where Python's signal handlers cannot
    run: on the main thread the open runs in a helper thread, so Ctrl-C still
    ends it.

    Args:
        spec: what to open, as the user named it (surrounding spaces and ``~`` are allowed).
        reconnect: live sources only: how many seconds a camera or stream that drops is reopened
            after its last good frame (None: 30 s; ``math.inf``: forever; 0: end at the first drop).
            Files are never reopened.
        timeout_s: live sources only: the longest an open or a read may take before it counts as a drop.

    Returns:
        A :class:`Source` to iterate (and to close, or use in a ``with`` block): a
        :class:`LiveSource`, a :class:`CaptureSource` or an :class:`ImageSource`. A source
        that cannot be opened raises :class:`~livecam.errors.LivecamError` instead.

    Example::

        with open_source("demo") as source:
            for frame in source:
                print(frame.index, frame.timestamp, frame.image.shape)
    """
    path = Path(str(spec).strip()).expanduser()
    with contextlib.suppress(OSError, ValueError):
        if stat.S_ISFIFO(path.stat().st_mode):
            log.warning("%s is a named pipe: waiting for something to write to it (Ctrl-C to stop)", path)
    return interruptible(_open_source, spec, reconnect, timeout_s)


def _open_source(spec: str, reconnect: float | None, timeout_s: float) -> Source:
    reconnect = DEFAULT_RECONNECT_S if reconnect is None else reconnect
    text = str(spec).strip()
    if not text:
        raise LivecamError(f"{option('source')} is empty; {_WHAT_TO_GIVE}")
    if text.isdigit():
        return LiveSource(int(text), f"camera {text}", reconnect, timeout_s)
    if text.lower() == "demo":
        path = demo_clip_path()
        return CaptureSource(str(path), f"the built-in demo clip ({path})", path=path)
    if text.lower().startswith(STREAM_PREFIXES):
        return _open_url(text, reconnect, timeout_s)
    path = Path(text).expanduser()
    if path.is_dir():
        return image_folder(path)
    if not path.exists():
        raise LivecamError(f"{text} does not exist; {_WHAT_TO_GIVE}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return image_file(path)
    return CaptureSource(str(path), f"video {path}", path=path)


def _open_url(url: str, reconnect: float, timeout_s: float) -> Source:
    """A stream, or a recorded video served over the network (it has a length): that one is read whole, as a file."""
    cap = open_live(url, timeout_s)
    if cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
        return CaptureSource(url, f"video {url}", cap=cap)
    return LiveSource(url, f"stream {url}", reconnect, timeout_s, cap=cap)


def spread_indices(total: int, count: int) -> list[int]:
    """The indices of ``count`` frames spread evenly over ``total`` (the first and the last included), in order;
    all of them when ``total <= count``."""
    if total <= count:
        return list(range(total))
    return sorted({round(i * (total - 1) / (count - 1)) if count > 1 else 0 for i in range(count)})


def spread_frames(source: Source, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a source of known length, else its first ``count``."""
    total = source.frame_count
    wanted = None if not total or total <= count else set(spread_indices(total, count))
    images = []
    for frame in source:
        if wanted is None or frame.index in wanted:
            images.append(frame.image)
        if len(images) >= count:
            break
    if not images:
        raise LivecamError(f"{source.description} gave no frames")
    return images
