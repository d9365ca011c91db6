"""Live sources, cameras and streams: they come back when they drop, and never go stale.

A read that fails or blocks past a timeout, an unplugged camera or a stream
that ends makes the source reopen itself with exponential backoff, for up to
``reconnect`` seconds after the last good frame, while its iterator keeps
yielding into the same run. A background thread (:class:`_Grabber`) keeps
reading from the moment the source opens, so nothing goes stale in the
camera's or the socket's buffer while a model loads: iteration starts from a
current frame. A live source has no rate of its own (``fps`` is None): the
recorder measures it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import cv2
import numpy as np

from livecam.errors import LivecamError, option
from livecam.sources.base import DEFAULT_TIMEOUT_S, Source, as_bgr, quiet_opencv
from livecam.types import Frame

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
DEFAULT_RECONNECT_S = 30.0  # live sources: how long to keep trying after the last good frame
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 5.0


def live_error(target: str | int) -> str:
    """The message for a camera or a stream that does not open or gives no first frame."""
    if isinstance(target, int):
        return (
            f"camera {target} could not be opened; check that it is connected and not in use, "
            f"or try another index ({option('source')} 1)"
        )
    return f"could not read the stream {target}; check the URL and that the stream is running"


def open_live(target: str | int, timeout_s: float) -> cv2.VideoCapture:
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

    def _blocking(self, call: Callable[[], T]) -> T:
        """``call()``, a cv2 open or read that may block, watched by the source's watchdog."""
        self.busy_since = time.monotonic()
        try:
            return call()
        finally:
            self.busy_since = None

    def _reopen(self, tries: int) -> cv2.VideoCapture | None:
        """After a backoff, try to open the source again: the capture, or None (not opened, or not wanted now)."""
        owner = self.owner
        delay = min(FIRST_BACKOFF_S * 2 ** (tries - 1), MAX_BACKOFF_S, max(0.0, owner._time_left()))
        log.warning("%s stopped delivering frames; reconnecting (try %d in %.1f s)", owner.description, tries, delay)
        if owner._closed.wait(delay) or not self._current():
            return None
        cap = self._blocking(lambda: open_live(owner.target, owner.timeout_s))
        if not self._current() or not cap.isOpened():
            cap.release()
            return None
        return cap

    def run(self) -> None:
        owner = self.owner
        tries = 0
        try:
            while self._current():
                if self.cap is None:
                    if not owner._may_retry():
                        return
                    tries += 1
                    self.cap = self._reopen(tries)
                    continue
                cap = self.cap
                with quiet_opencv():
                    ok, image = self._blocking(cap.read)
                if not self._current():
                    return
                if not ok or image is None:
                    cap.release()
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
        cap = open_live(target, timeout_s) if cap is None else cap
        with quiet_opencv():
            first = cap.read()[1] if cap.isOpened() else None
        if first is None:
            cap.release()
            raise LivecamError(live_error(target))
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
    def _fresh(self, last_seq: int, index: int, begun: float) -> tuple[int, float, np.ndarray] | None:
        """The latest frame if it is one not yielded yet (and, for the first, captured after ``begun``)."""
        latest = self._latest
        if latest is None or latest[0] <= last_seq or (index == 0 and latest[1] < begun):
            return None
        return latest

    def __iter__(self) -> Iterator[Frame]:
        begun = time.monotonic() - self._start
        last_seq = 0
        index = 0
        while not self._closed.is_set():
            with self._cond:
                # the first frame is one captured after iteration began, not one kept from before
                fresh = self._fresh(last_seq, index, begun)
                if fresh is None:
                    if self.gave_up or not self._grabber.is_alive():
                        return
                    self._cond.wait(0.2)
                    fresh = self._fresh(last_seq, index, begun)
            if fresh is None:
                self._watchdog()
                continue
            last_seq, stamp, image = fresh
            yield Frame(as_bgr(image), index, stamp)
            index += 1

    def close(self) -> None:
        self._closed.set()
        self._wake()
        self._grabber.join(timeout=1.0)  # a hung read keeps a daemon thread; it releases its capture when it returns
