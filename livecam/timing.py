"""Per-stage wall-clock timers, and paced playback's clock. No PyTorch here: an engine on a GPU passes its own
synchronization."""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

Timer = Callable[[str], AbstractContextManager[None]]
LATE_S = 0.25  # paced: a frame this far behind its time re-anchors the clock (a stall): no burst to catch up


def no_timer(_stage: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


class StageTimer:
    """``with timer("forward"): ...`` appends the stage's seconds to ``timer.times["forward"]``.

    With ``sync`` (e.g. ``torch.cuda.synchronize`` on a CUDA device) it waits for
    the device before and after each stage, so that the time is the stage's own
    and not the queue's; that serializes the work, so use it to break a step into
    stages, not to measure the overlapped rate.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.times: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.sync is not None:
            self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.times[stage].append(time.perf_counter() - start)


_IMPORTED = time.monotonic()


def process_age() -> float:
    """Seconds since this process started (Linux: from /proc, to 10 ms), else since livecam was imported."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return max(0.0, float(f.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def pace_wait(timestamp: float, start: float, now: float) -> float:
    """Seconds to wait before releasing the frame at ``timestamp`` (seconds in the source) when the source's time
    0 is at ``start`` on the clock and the clock reads ``now``; 0 for a frame that is due or late."""
    return max(0.0, start + timestamp - now)


class PlayClock:
    """Paced playback's clock: where on ``time.perf_counter()`` the source's time 0 falls.

    The first frame anchors it (and shows at once); frame i is then due at
    ``start + timestamp``, so a slow frame delays none after it. A frame more
    than ``late`` seconds behind its time re-anchors the clock at itself, so
    that after a stall (or with an engine slower than the source) playback goes
    on from there instead of racing to catch up. :meth:`reset` makes the next
    frame anchor it again: what a pause does when it resumes.
    """

    def __init__(self, late: float = LATE_S) -> None:
        self.late = late
        self.start: float | None = None

    def reset(self) -> None:
        self.start = None

    def wait(self, timestamp: float, now: float) -> float:
        """Seconds to wait before the frame at ``timestamp`` shows (re-anchoring the clock where it must)."""
        if self.start is None or self.start + timestamp < now - self.late:
            self.start = now - timestamp
        return pace_wait(timestamp, self.start, now)
