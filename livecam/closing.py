"""One base for what a ``with`` block opens and closes: sources, sinks, engines, the manifest.

``__enter__`` is typed with a TypeVar bound to the base, so ``with VideoFileSink(...) as sink``
keeps ``sink`` a :class:`VideoFileSink` for the type checker (and ``server.url``,
``sink.discard()`` stay visible), as httpx types its transports.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_Self = TypeVar("_Self", bound="Closing")


class Closing:
    """Holds a resource until :meth:`close`; ``with`` closes it, also when the block raises.

    Subclasses override :meth:`close` (and ``__exit__`` only where an error must change what
    closing does, as a recording that is discarded instead of finalized).
    """

    def close(self) -> None:
        """Release what this object holds. A second call does nothing."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
