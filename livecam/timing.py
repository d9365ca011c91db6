"""Per-stage wall-clock timers. No PyTorch here: an engine on a GPU passes its own synchronization."""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

Timer = Callable[[str], AbstractContextManager[None]]


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
