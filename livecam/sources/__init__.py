"""Where frames come from: webcams, video files, streams, images, the demo clip.

``open_source(spec)`` turns what the user typed after ``--source`` into a
:class:`Source`, an iterable of :class:`Frame` (BGR uint8), checking up front
that it can be read, so that a bad source is a one-line error before any model
is loaded.

Live sources (a camera index, a stream URL) come back when they drop: a read
that fails or blocks past a timeout, an unplugged camera or a stream that ends
makes the source reopen itself with exponential backoff, for up to
``reconnect`` seconds after the last good frame, while its iterator keeps
yielding into the same run. A background thread keeps reading a live source
from the moment it opens, so nothing goes stale in the camera's or the
socket's buffer while a model loads: iteration starts from a current frame.

A file's frames carry the decoder's presentation times, counted from the
first frame, so a variable-frame-rate file keeps its own rhythm in the log and
in the recording; a constant-rate file's frames are at exactly index / rate
(the container's clock rounds those by less than a tick). What the container
states about its length (read by PyAV from the header: a frame count, or a
duration) says whether a file ended early.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from livecam.sources.demo import demo_clip_path
from livecam.errors import LivecamError
from livecam.text import plural
from livecam.types import Frame

__all__ = ["CaptureSource", "Frame", "ImageSource", "LiveSource", "Source", "Stated", "open_source", "spread_frames"]

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
DEFAULT_IMAGE_FPS = 2.0
DEFAULT_VIDEO_FPS = 25.0
DEFAULT_RECONNECT_S = 30.0  # live sources: how long to keep trying after the last good frame
DEFAULT_TIMEOUT_S = 5.0  # live sources: an open or a read that takes longer counts as a drop
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0
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


class Source:
    """An iterable of frames with what the sinks need to know about it."""

    description: str = ""
    fps: float | None = None  # the nominal rate; None for live sources (measure it)
    frame_count: int | None = None  # None when unknown (live sources)
    is_live: bool = False
    path: Path | None = None  # the file read, if any
    size: tuple[int, int] | None = None  # (width, height) of the first frame, when known before iterating

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    """What an open PyAV ``container`` states about its video ``stream``."""
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


class CaptureSource(Source):
    """A cv2.VideoCapture of a video file (or of a recorded video served by URL).

    The first frame is read when the source opens, so that a source that opens
    but cannot be decoded is reported at once. A file that ends before the
    frame count its container states says so in a warning.
    """

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
            raise LivecamError(_open_error(target, False))
        self._first: tuple[np.ndarray, float] | None = (first, self._position())
        self.size = (first.shape[1], first.shape[0])
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._rate = fps if 0.5 <= fps <= 1000 else DEFAULT_VIDEO_FPS
        self.fps = self._rate
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
        fps = self._rate
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
            yield Frame(_as_bgr(item[0]), index, stamp, duration=duration)
            index += 1
            item, stamp = after, following
        if index:
            why = ended_early(index, stamp, longest, fps, self.stated, self._estimate)
            if why is not None:
                log.warning("%s: %s", self.description, why)

    def close(self) -> None:
        self._cap.release()


def _open_error(target: str | int, is_live: bool) -> str:
    if isinstance(target, int):
        return (
            f"camera {target} could not be opened; check that it is connected and not in use, "
            "or try another index (--source 1)"
        )
    if is_live:
        return f"could not read the stream {target}; check the URL and that the stream is running"
    return f"could not read {target} as a video; check that the file is a complete video (mp4, avi, mkv, ...)"


def _open_live(target: str | int, timeout_s: float) -> cv2.VideoCapture:
    """Open a camera or stream; FFmpeg's open and read give up after ``timeout_s`` (a stalled stream)."""
    with quiet_opencv():
        if isinstance(target, int):
            return cv2.VideoCapture(target)
        ms = max(1, int(timeout_s * 1000))
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)


class _Grabber(threading.Thread):
    """Reads a live source for as long as it is wanted, reopening it with backoff when it drops.

    One grabber is one generation: when a read blocks past the watchdog, the
    source starts a new grabber and this one, once its read returns, releases
    its capture and ends.
    """

    def __init__(self, owner: LiveSource, cap: cv2.VideoCapture | None, generation: int) -> None:
        super().__init__(name=f"livecam-capture-{generation}", daemon=True)
        self.owner = owner
        self.cap = cap
        self.generation = generation
        self.busy_since: float | None = None  # when a blocking open or read began

    def _current(self) -> bool:
        return not self.owner._closed.is_set() and self.owner._generation == self.generation

    def _blocking(self, call, *args):  # noqa: ANN001, ANN202 - a cv2 call
        self.busy_since = time.monotonic()
        try:
            return call(*args)
        finally:
            self.busy_since = None

    def run(self) -> None:
        owner = self.owner
        tries = 0
        try:
            while self._current():
                if self.cap is None:
                    if not owner._may_retry():
                        return
                    tries += 1
                    delay = min(FIRST_BACKOFF_S * 2 ** (tries - 1), MAX_BACKOFF_S, max(0.0, owner._time_left()))
                    log.warning("%s stopped delivering frames; reconnecting (try %d in %.1f s)",
                                owner.description, tries, delay)
                    if owner._closed.wait(delay) or not self._current():
                        return
                    cap = self._blocking(_open_live, owner.target, owner.timeout_s)
                    if not self._current():
                        cap.release()
                        return
                    if not cap.isOpened():
                        cap.release()
                        continue
                    self.cap = cap
                with quiet_opencv():
                    ok, image = self._blocking(self.cap.read)
                if not self._current():
                    return
                if not ok or image is None:
                    self.cap.release()
                    self.cap = None
                    continue
                if tries:
                    log.warning("%s is back after %d %s", owner.description, tries, "try" if tries == 1 else "tries")
                    tries = 0
                owner._publish(image)
        finally:
            if self.cap is not None:
                self.cap.release()
            owner._wake()


class LiveSource(Source):
    """A camera index or a stream URL that keeps delivering frames, reconnecting when it drops.

    ``reconnect`` is how many seconds to keep trying after the last good frame
    (``math.inf``: forever; 0: end at the first drop). ``timeout_s`` bounds
    each open and read: a read that blocks longer counts as a drop. Frame
    indices keep counting across reconnections; timestamps are capture times
    (seconds of ``time.monotonic()`` since the source opened).
    """

    is_live = True

    def __init__(self, target: str | int, description: str, reconnect: float = DEFAULT_RECONNECT_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S, cap: cv2.VideoCapture | None = None) -> None:
        self.target = target
        self.description = description
        self.reconnect = reconnect
        self.timeout_s = timeout_s
        self.gave_up = False
        cap = _open_live(target, timeout_s) if cap is None else cap
        with quiet_opencv():
            first = cap.read()[1] if cap.isOpened() else None
        if first is None:
            cap.release()
            raise LivecamError(_open_error(target, True))
        self.size = (first.shape[1], first.shape[0])
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._start = time.monotonic()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._seq = 0
        self._last_good = self._start
        self._generation = 0
        self._publish(first)
        self._grabber = _Grabber(self, cap, 0)
        self._grabber.start()

    # --- called by the grabber thread
    def _publish(self, image: np.ndarray) -> None:
        now = time.monotonic()
        with self._cond:
            self._seq += 1
            self._last_good = now
            self._latest = (self._seq, now - self._start, image)
            self._cond.notify_all()

    def _time_left(self) -> float:
        return self.reconnect - (time.monotonic() - self._last_good)

    def _may_retry(self) -> bool:
        if self._time_left() > 0 or math.isinf(self.reconnect):
            return True
        with self._cond:
            if not self.gave_up:
                self.gave_up = True
                log.warning("%s stopped delivering frames; gave up reconnecting after %.1f s without a frame",
                            self.description, time.monotonic() - self._last_good)
            self._cond.notify_all()
        return False

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _watchdog(self) -> None:
        """A read or open blocked past the timeout (a hung camera): abandon it to a new grabber."""
        grabber = self._grabber
        busy = grabber.busy_since
        if busy is None or time.monotonic() - busy < self.timeout_s + 1.0:
            return
        log.warning("%s: a read blocked for more than %.1f s", self.description, self.timeout_s)
        with self._cond:
            self._generation += 1
            self._grabber = _Grabber(self, None, self._generation)
        self._grabber.start()

    # --- the consumer side
    def __iter__(self) -> Iterator[Frame]:
        begun = time.monotonic() - self._start
        last_seq = 0
        index = 0
        while not self._closed.is_set():
            with self._cond:
                latest = self._latest
                # the first frame is one captured after iteration began, not one kept from before
                fresh = latest is not None and latest[0] > last_seq and (index > 0 or latest[1] >= begun)
                if not fresh:
                    if self.gave_up or not self._grabber.is_alive():
                        return
                    self._cond.wait(0.2)
                    latest = self._latest
                    fresh = latest is not None and latest[0] > last_seq and (index > 0 or latest[1] >= begun)
            if not fresh:
                self._watchdog()
                continue
            last_seq, stamp, image = latest
            yield Frame(_as_bgr(image), index, stamp)
            index += 1

    def close(self) -> None:
        self._closed.set()
        self._wake()
        self._grabber.join(timeout=1.0)  # a hung read keeps a daemon thread; it releases its capture when it returns


class ImageSource(Source):
    """One image file or a folder of them, in natural name order."""

    def __init__(self, paths: list[Path], description: str, fps: float = DEFAULT_IMAGE_FPS) -> None:
        self.paths = paths
        self.description = description
        self.fps = fps
        self.frame_count = len(paths)
        self.path = paths[0] if len(paths) == 1 else None
        self._size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int] | None:  # type: ignore[override]
        """The first readable image's (width, height): the recording's size."""
        if self._size is None:
            with quiet_opencv():
                for path in self.paths:
                    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                    if image is not None:
                        self._size = (image.shape[1], image.shape[0])
                        break
        return self._size

    def __iter__(self) -> Iterator[Frame]:
        index, fps = 0, float(self.fps or DEFAULT_IMAGE_FPS)
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping %s: not a readable image", path)
                continue
            yield Frame(image, index, index / fps, duration=1.0 / fps)
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
    return ImageSource(paths, f"{plural(len(paths), 'image')} in {folder}")


def open_source(spec: str, reconnect: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Source:
    """Open what ``--source`` names: a camera index, ``demo``, a URL, a video, an image or a folder.

    ``reconnect`` (live sources only; default 30 s, ``math.inf`` forever) is how
    long a camera or stream that drops is reopened after its last good frame;
    files are never reopened. ``timeout_s`` bounds a live source's opens and reads.

    Opening can block in FFmpeg or a driver for as long as they like (a named
    pipe waits for its writer), where Python's signal handlers cannot run: on
    the main thread the open runs in a helper thread, so Ctrl-C still ends it.
    """
    path = Path(str(spec).strip()).expanduser()
    with contextlib.suppress(OSError, ValueError):
        if stat.S_ISFIFO(path.stat().st_mode):
            log.warning("%s is a named pipe: waiting for something to write to it (Ctrl-C to stop)", path)
    return interruptible(_open_source, spec, reconnect, timeout_s)


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


def _open_source(spec: str, reconnect: float | None, timeout_s: float) -> Source:
    reconnect = DEFAULT_RECONNECT_S if reconnect is None else reconnect
    text = str(spec).strip()
    if not text:
        raise LivecamError(
            "--source is empty; give a camera index (0), a video file, a folder of images, a URL or 'demo'"
        )
    if text.isdigit():
        return LiveSource(int(text), f"camera {text}", reconnect, timeout_s)
    if text.lower() == "demo":
        path = demo_clip_path()
        return CaptureSource(str(path), f"the built-in demo clip ({path})", path=path)
    if text.lower().startswith(STREAM_PREFIXES):
        cap = _open_live(text, timeout_s)
        if cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
            # a recorded video served over the network (it has a length): read it whole, as a file
            return CaptureSource(text, f"video {text}", cap=cap)
        return LiveSource(text, f"stream {text}", reconnect, timeout_s, cap=cap)
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
    return CaptureSource(str(path), f"video {path}", path=path)


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
