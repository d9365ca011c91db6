"""What every sink is, and the rules a recording's path follows.

A sink is a context manager with ``write(annotated)`` and ``stop_requested``
(the user closed the window or pressed q). A sink never reaches into the
engine: it sees the output image and the source frame. ``main_thread`` says
whether its ``write`` must run on the main thread (GUI toolkits); the others
run on the pipeline's writer thread, so they never slow the engine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from livecam.closing import Closing
from livecam.outputs import Output, check_output, partial_path
from livecam.sinks.encode import DEFAULT_CODEC
from livecam.types import Annotated

__all__ = ["Recordable", "Sink", "check_output_path", "partial_path"]


class Recordable(Protocol):
    """What the recorder asks of a source (:class:`livecam.sources.Source` has it all)."""

    @property
    def fps(self) -> float | None: ...

    @property
    def is_live(self) -> bool: ...

    @property
    def path(self) -> Path | None: ...

    @property
    def size(self) -> tuple[int, int] | None: ...


class Sink(Closing):
    """Where annotated frames go: :meth:`write` takes each, :meth:`close` (or the ``with`` block) finishes."""

    stop_requested: bool = False
    main_thread: bool = False  # must write() run on the main thread (GUI toolkits)?

    def write(self, annotated: Annotated) -> None:
        raise NotImplementedError

    def idle(self) -> None:
        """While the run is paused (live controls), called on the main thread instead of :meth:`write`, about 20
        times a second: a window reads its keys here. The default waits a little."""
        time.sleep(0.05)

    def poll(self) -> None:
        """While a paced file's next frame is not due yet (an image folder at ``--fps 1``, say), called on the main
        thread about 10 times a second between writes: a window reads its keys here. The default does nothing."""


def check_output_path(path: Path, overwrite: bool, source_path: Path | None = None) -> Path:
    """Refuse a recording path that cannot be written or would destroy the user's data (livecam.outputs' rule)."""
    output = Output("output", path, suffixes=tuple(DEFAULT_CODEC))  # the setting: Output names it with option()
    return check_output(output, [source_path] if source_path is not None else [], overwrite)
