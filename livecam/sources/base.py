"""What every source is, and the clock of a file's frames.

:class:`Source` is the one shape the pipeline reads frames from, whatever
they come from: a file, a camera, a stream, the demo clip, a span of a file.
The helpers here are those several sources share: the times of a file's
frames, counted from the first frame so that a variable-frame-rate file keeps
its own rhythm (:func:`frame_time`, :func:`last_duration`); what its container
states about its length (:class:`Stated`), which says whether it ended early;
OpenCV kept quiet while it probes (:func:`quiet_opencv`); and an open that
Ctrl-C can interrupt (:func:`interruptible`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from livecam.closing import Closing
from livecam.types import Frame

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_VIDEO_FPS = 25.0
DEFAULT_TIMEOUT_S = 5.0  # live sources: an open or a read that takes longer counts as a drop
FALLBACK_TICK_S = 0.001  # a file whose header PyAV cannot read: Matroska's clock


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = 0


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log lines (probing a camera prints several), unless livecam logs debug messages.

    OpenCV's log level is global: nested and concurrent uses (a live source's capture thread reads inside
    this) put back the level from before the first one.
    """
    global _quiet_depth, _quiet_saved
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                cv2.utils.logging.setLogLevel(_quiet_saved)


class Source(Closing):
    """An iterable of frames with what the sinks need to know about it."""

    description: str = ""
    fps: float | None = None  # the nominal rate; None for live sources (measure it)
    frame_count: int | None = None  # None when unknown (live sources)
    is_live: bool = False
    path: Path | None = None  # the file read, if any
    _size: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the first frame, when known before iterating (the recording's size)."""
        if self._size is None:
            self._size = self._find_size()
        return self._size

    @size.setter
    def size(self, value: tuple[int, int] | None) -> None:
        self._size = value

    def _find_size(self) -> tuple[int, int] | None:
        """The size, for a source that finds it only when asked (a folder of images); None: not known yet."""
        return None


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A decoded image as 3-channel BGR (grey and BGRA ones converted)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


@dataclass(frozen=True)
class Stated:
    """What a file's container states about its video stream, before any frame is decoded.

    ``frames``: the frame count it holds (MP4, MOV and AVI state one; Matroska and MPEG-TS do not: None).
    ``end``: seconds from the first frame to the end of the last, where the header says. ``tick``: the
    seconds of one tick of the stream's clock, the precision of its times.
    """

    frames: int | None = None
    end: float | None = None
    tick: float = FALLBACK_TICK_S


def _clock_text(text: str) -> float | None:
    """Matroska's per-track DURATION tag, "00:00:06.293000000", in seconds."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def stated_of(container: Any, stream: Any) -> Stated:
    """What an open PyAV ``container`` states about its video ``stream``.

    Both are PyAV objects (``av.container.InputContainer``, ``av.video.stream.VideoStream``), typed ``Any``
    here so that this module loads without PyAV.
    """
    base = stream.time_base
    end = None
    if stream.duration and base:
        end = float(stream.duration * base)
    elif "DURATION" in stream.metadata:
        end = _clock_text(stream.metadata["DURATION"])
    elif container.duration and len(container.streams) == 1:  # the container's, when it is the video's alone
        end = container.duration / 1e6
    return Stated(stream.frames if stream.frames and stream.frames > 0 else None, end,
                  float(base) if base else FALLBACK_TICK_S)


def read_stated(target: str) -> Stated | None:
    """What the file (or the recorded video at a URL) ``target`` states, read with PyAV; None if it cannot."""
    import av

    try:
        with av.open(target, timeout=DEFAULT_TIMEOUT_S) as container:
            if not container.streams.video:
                return None
            return stated_of(container, container.streams.video[0])
    except (av.FFmpegError, OSError, ValueError):
        return None


def frame_time(index: int, position: float, fps: float, tick: float, previous: float | None) -> float:
    """Frame ``index``'s timestamp from the decoder's ``position`` (seconds from the first frame).

    Within a tick of the stream's clock of ``index / fps``, it is ``index / fps`` exactly: a constant-rate
    file's times are those its clock rounded. A position not later than the ``previous`` frame's (a stream
    without times, such as raw H.264, reads 0 throughout) gives ``index / fps``, or a frame after the
    previous. Times therefore increase strictly.
    """
    nominal = index / fps
    stamp = nominal if abs(position - nominal) < min(tick, 0.5 / fps) else position
    if previous is not None and stamp <= previous:
        stamp = nominal if nominal > previous else previous + 1.0 / fps
    return stamp


def last_duration(last: float, end: float | None, longest: float, fps: float) -> float:
    """How long the last frame (at ``last`` s) shows: until the stated ``end``, when that lies within two of
    the longest intervals between frames (``longest``) or nominal frames after it; else a frame at ``fps``."""
    rest = None if end is None else end - last
    if rest is not None and 0 < rest <= 2 * max(longest, 1.0 / fps):
        return rest
    return 1.0 / fps


def ended_early(read: int, last: float, longest: float, fps: float, stated: Stated | None,
                estimate: int | None) -> str | None:
    """Why a file whose ``read`` frames ended at ``last`` s ended early, or None when it ended where it says.

    Against the frame count the container states, where the frames fall short by more than one and end more
    than two intervals (``longest``, or a frame at ``fps``) before that count's time at ``fps`` (AVI states
    slots of a fixed rate, some of them empty where a source's rate varied); else against its stated length.
    Without a header to read, against OpenCV's count (``estimate``), which may be one derived from the length.
    """
    slack = 2 * max(longest, 1.0 / fps)
    if stated is None:
        frames = estimate if estimate and read < estimate - 1 else None
        return None if frames is None else f"the file ended after {read} of its {frames} frames"
    if stated.frames:
        short = read < stated.frames - 1 and last + slack < stated.frames / fps
        return f"the file ended after {read} of its {stated.frames} frames" if short else None
    if stated.end is not None and last + slack < stated.end:
        return f"the file ended at {last:.1f} s of its {stated.end:.1f} s"
    return None


def interruptible(call: Callable[..., T], *args: object) -> T:
    """``call(*args)``, in a helper thread when this is the main thread, so that Ctrl-C interrupts the wait.

    The helper is a daemon: if the wait is interrupted it is left to finish (or block) on its own.
    """
    if threading.current_thread() is not threading.main_thread():
        return call(*args)
    done = threading.Event()
    result: list[T] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(call(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="livecam-open", daemon=True).start()
    while not done.wait(0.1):
        pass
    if error:
        raise error[0]
    return result[0]
