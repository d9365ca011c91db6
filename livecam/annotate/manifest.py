"""``DIR/manifest.jsonl``: one JSON line per input and run, what a rerun resumes from.

The parent process alone writes it (:class:`Manifest`), a flushed line as each
file finishes; the latest line per input wins (:func:`read_manifest`). A line
(:class:`Record`) says what became of an input: its status, frames, speed,
most frequent top classes, the source's size and modification time, and the
settings its output was made with (:mod:`livecam.annotate.settings`). The
outputs a line records as done or skipped are livecam's own; planning never
replaces any other file (:class:`History`).

Errors in a line are user-visible text: whoever writes them renders them with
the caller's ``describe`` (the CLI's names its flags, see
:func:`livecam.errors.option`).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypedDict, cast

from livecam.annotate.job import Job
from livecam.annotate.settings import Settings
from livecam.closing import Closing

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
DONE, FAILED, SKIPPED = "done", "failed", "skipped"
INTERRUPTED = "interrupted"  # a file stopped part-way: no output, no manifest line (a rerun redoes it)
TOP_CLASSES = 3

Describe = Callable[[Exception], str]
"""How an error reads in a line and the summary: ``str`` (the library's words), or the CLI's (its flags)."""


class TopClass(TypedDict):
    name: str
    count: int


class _CompareFields(TypedDict, total=False):
    """What ``--compare`` adds to a record: the second side's top classes, as ``top_classes`` are the first's."""

    compare_top_classes: list[TopClass]


class _PartFields(_CompareFields, total=False):
    """What a part of a long file adds to its record, for joining (never in the manifest: the file's is)."""

    part: int  # which part of its file
    class_counts: dict[str, int]  # every class's count, not only the top ones
    compare_class_counts: dict[str, int]  # --compare: the same for the second side
    started_at: float  # when the part began (time.time())


class Record(_PartFields):
    """A manifest line, as a run writes it."""

    input: str
    output: str
    status: str  # DONE, FAILED, SKIPPED, or INTERRUPTED (never written)
    frames: int
    source_frames: int | None
    seconds: float
    fps: float
    top_classes: list[TopClass]
    source_size: int
    source_mtime_ns: int
    source_mtime: str | None
    error: str | None
    settings: Settings
    finished: str | None
    chunks: int


class Line(_CompareFields, total=False):
    """A manifest line as read back: only ``input`` is checked; older manifests (or edits) may lack any other."""

    input: str
    output: str
    status: str
    frames: int
    source_frames: int | None
    top_classes: list[TopClass]
    source_size: int
    source_mtime_ns: int
    settings: Settings
    chunks: int


@dataclass(frozen=True)
class History:
    """What a manifest says: the latest line per input, and every output a line records as done or skipped
    (livecam's files)."""

    latest: dict[str, Line]
    written: set[str]


def utc_now() -> str:
    """The time a line is finished, as it is written: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_record(job: Job, settings: Settings, status: str) -> Record:
    """``job``'s line before any work: no frames, no time, no error (the one who fills it in sets those)."""
    mtime = (datetime.fromtimestamp(job.mtime_ns / 1e9, timezone.utc).isoformat(timespec="seconds")
             if job.mtime_ns >= 0 else None)
    record: Record = {
        "input": job.input, "output": job.output, "status": status, "frames": 0, "source_frames": None,
        "seconds": 0.0, "fps": 0.0, "top_classes": [], "source_size": job.size, "source_mtime_ns": job.mtime_ns,
        "source_mtime": mtime, "error": None, "settings": settings, "finished": None, "chunks": 1}
    if job.span is not None:
        record["part"] = job.part
    return record


def error_record(job: Job, settings: Settings, status: str, error: str) -> Record:
    """The finished line of a job that did no work: refused, failed before it began, or ``interrupted``."""
    record = base_record(job, settings, status)
    record.update({"error": error, "finished": utc_now()})
    return record


def top_classes(counts: Counter[str]) -> list[TopClass]:
    """The most frequent top classes of a file, as its line lists them."""
    return [{"name": name, "count": n} for name, n in counts.most_common(TOP_CLASSES)]


def skipped_record(job: Job, earlier: Line, settings: Settings) -> Record:
    """The manifest line for an input an earlier run finished: its frames and classes, no time spent now.

    The settings are this run's, with the layer the earlier run resolved where this run left it to the model
    (they compared equal, so it is the one this run would use).
    """
    before = earlier.get("settings")
    if settings.get("layer") is None and isinstance(before, dict) and before.get("layer") is not None:
        settings = {**settings, "layer": before["layer"]}
    record = base_record(job, settings, SKIPPED)
    record.update({"frames": earlier.get("frames", 0), "source_frames": earlier.get("source_frames"),
                   "top_classes": earlier.get("top_classes", []), "chunks": earlier.get("chunks", 1),
                   "finished": utc_now()})
    if "compare_top_classes" in earlier:
        record["compare_top_classes"] = earlier["compare_top_classes"]
    return record


def refused_record(job: Job, reason: str, settings: Settings) -> Record:
    """The failed manifest line for an input whose output would replace a file livecam did not write."""
    return error_record(job, settings, FAILED, reason)


def _lines(path: Path) -> Iterator[Line]:
    """The lines of a manifest, in order (an absent file: none). Lines that do not parse are passed over.

    A torn last line (a run killed while writing it) is reported once, by :class:`Manifest` when it next
    opens the file and starts a new line below it; later, a line that does not parse is mentioned at ``-v``.
    """
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                if not isinstance(line, dict) or not isinstance(line.get("input"), str):
                    raise ValueError("no input")
            except ValueError:
                log.info("%s line %d is not a manifest record; passed over", path, number)
                continue
            yield cast(Line, line)  # its input checked; any other key may be missing


def read_history(path: Path) -> History:
    """The latest line per input of the manifest at ``path``, and the outputs livecam wrote."""
    history = History({}, set())
    for line in _lines(path):
        history.latest[line["input"]] = line
        output = line.get("output")
        if line.get("status") in (DONE, SKIPPED) and isinstance(output, str):
            history.written.add(output)
    return history


def read_manifest(path: Path) -> dict[str, Line]:
    """The latest line per input of a manifest (an absent file: none). Lines that do not parse are passed over."""
    return read_history(path).latest


class Manifest(Closing):
    """``DIR/manifest.jsonl``, appended one flushed line at a time by the parent process only.

    A run killed while writing a line leaves it torn (no newline at its end). Opening the file finishes that
    line with a newline, so this run's first line is a line of its own rather than glued onto the torn one
    and lost with it; the torn line is reported here, once, and left as it is (it is the user's file).
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST_NAME
        self._file = self.path.open("a", encoding="utf-8")
        torn = _torn_tail(self.path)
        if torn is not None:
            try:
                json.loads(torn)
            except ValueError:
                log.warning("%s ends in a torn line (a run was stopped while writing it): %s; it is left as it "
                            "is and passed over, and new lines start below it", self.path, _shortened(torn))
            self._file.write("\n")
            self._file.flush()

    def append(self, record: Record) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _torn_tail(path: Path) -> str | None:
    """The text after the last newline of ``path`` when there is some (a line not ended), else None."""
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return None
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return None
        start = end
        while start > 0:  # read back a block at a time to the last newline
            block_start = max(0, start - 65536)
            file.seek(block_start)
            block = file.read(start - block_start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                start = block_start + newline + 1
                break
            start = block_start
        file.seek(start)
        return file.read(end - start).decode("utf-8", errors="replace")


def _shortened(text: str, width: int = 60) -> str:
    return text if len(text) <= width else f"{text[:width]}..."
