"""Per-stage wall-clock timers, honest on GPUs: CUDA work is synchronized around each stage."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import torch

Timer = Callable[[str], AbstractContextManager[None]]


def no_timer(_stage: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


class StageTimer:
    """``with timer("forward"): ...`` appends the stage's seconds to ``timer.times["forward"]``.

    With a CUDA device it synchronizes before and after each stage, so that the
    time is the stage's own and not the queue's; that serializes the work, so
    use it to break a step into stages, not to measure the overlapped rate.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.sync = torch.device(device).type == "cuda" if device is not None else False
        self.times: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.times[stage].append(time.perf_counter() - start)
