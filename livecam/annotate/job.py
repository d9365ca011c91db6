"""One unit of annotate's work, as planning hands it to the workers and the manifest records it.

It lives on its own because every part of the stage speaks of it: planning makes
jobs, workers (local or on Ray) take them, the manifest's lines name them, and
a long file cut in parts becomes one job per part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livecam.sources.clip import Span


@dataclass(frozen=True)
class Job:
    """One input file and where its annotated video goes (absolute paths), with the source's identity.

    With ``span``, one part of a long file (``chunk_seconds``): those frames only, into a hidden part file
    (``output``) that :class:`livecam.annotate.parts.Chunker` joins with the others into the file's output.
    """

    input: str
    output: str
    size: int
    mtime_ns: int
    span: Span | None = None
    part: int = 0
