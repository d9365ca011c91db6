"""Long recordings in parallel: cut at keyframes, each span decoded on its own, the parts joined without re-encoding.

``livecam annotate --chunk-seconds N`` splits a file longer than N seconds into
spans that workers annotate at the same time, and joins their recordings into
one output:

- :func:`plan_spans` reads the file's packets (no decoding) and cuts it at the
  first keyframe at least N seconds after the previous cut. A span is the
  frames whose presentation times lie in [its cut, the next cut): every frame
  belongs to exactly one span, also when B-frames reorder them.
- :class:`livecam.sources.clip.ClipSource` decodes one span: it seeks to the
  span's keyframe, drops the frames before the cut and stops at the first
  frame of the next span (it is a source, so it lives with the sources).
- :func:`join` concatenates the parts' packets into one file, each part's
  times shifted by the length of those before it (each packet carries its
  duration, so a part ends where the next span begins): one output, every
  frame in order and at its time, nothing encoded twice. Each part begins with
  a keyframe (an encoder's first frame always is), so the joined file decodes
  from any part's start.
- :class:`Chunker` hands a long file out as one job per span, holds the
  parts' lines until all of them are back, joins the parts into the file's
  output and passes on the file's one line.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from livecam.annotate.job import Job
from livecam.annotate.manifest import (DONE, FAILED, INTERRUPTED, Describe, Record, base_record, error_record,
                                       top_classes, utc_now)
from livecam.annotate.settings import Settings
from livecam.errors import LivecamError
from livecam.sinks.encode import CheckedFile, open_output
from livecam.sources.clip import ClipSource, Span, open_video

__all__ = ["Chunker", "ClipSource", "Span", "cuts", "join", "part_path", "plan_spans", "spans_of"]

log = logging.getLogger(__name__)


def cuts(stamps: list[int], keyframes: list[int], step: float) -> list[int]:
    """Where to cut: the first keyframe at least ``step`` after the previous cut, starting from the first frame.

    ``stamps`` are every frame's presentation time, ``keyframes`` those of the keyframes, ``step`` the span's
    least length, all in one time base. The first frame is always a cut (and need not be a keyframe).
    """
    if not stamps:
        return []
    points = [min(stamps)]
    for key in sorted(set(keyframes)):
        if key - points[-1] >= step:
            points.append(key)
    return points


def spans_of(stamps: list[int], points: list[int], time_base: Fraction) -> list[Span]:
    """The spans between consecutive cut ``points``, with their first frame's index and their frame counts."""
    ordered = sorted(stamps)
    spans: list[Span] = []
    for i, start in enumerate(points):
        end = points[i + 1] if i + 1 < len(points) else None
        first = bisect.bisect_left(ordered, start)
        last = bisect.bisect_left(ordered, end) if end is not None else len(ordered)
        spans.append(Span(None if i == 0 else start, end, first, last - first,
                          float((start - points[0]) * time_base), points[0]))
    return spans


def plan_spans(path: str | os.PathLike[str], seconds: float) -> list[Span]:
    """The spans of at least ``seconds`` that ``path`` cuts into at its keyframes; [] when it is not cut.

    A file that is shorter, has no keyframe late enough, cannot be read, or whose packets carry no
    presentation times is not cut (a worker then annotates it whole, and reports it if it is broken).
    """
    try:
        container = open_video(path)
    except LivecamError:
        return []
    with container:
        stream = container.streams.video[0]
        if container.duration is not None and container.duration / 1e6 <= seconds:
            return []  # the header says it is short: no need to read it through
        stamps: list[int] = []
        keyframes: list[int] = []
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's last, empty packet
                continue
            if packet.pts is None:
                log.info("%s: its packets carry no presentation times, so it is annotated whole", path)
                return []
            stamps.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        time_base = stream.time_base
    if not stamps or time_base is None:
        return []
    points = cuts(stamps, keyframes, seconds / time_base)
    if len(points) < 2:
        if (max(stamps) - min(stamps)) * time_base > seconds:
            log.info("%s: no keyframe to cut at, so it is annotated whole", path)
        return []
    return spans_of(stamps, points, time_base)


def join(parts: list[Path], target: Path) -> int:
    """Concatenate the recordings ``parts`` (one video stream each, encoded alike) into ``target``.

    Packets are copied, not decoded: each part's times are shifted to begin where the previous part ended.
    The file is written beside ``target`` under a hidden name and moved into place when complete, as a
    recording is; MP4 and MOV are fragmented as the recorder writes them. Returns the frames written;
    raises OSError when the file cannot be written and LivecamError when the parts do not fit together.
    """

    from livecam.sinks import partial_path

    partial = partial_path(target)
    file = CheckedFile(partial)
    frames = 0
    try:
        with open_output(file, target.suffix) as output:
            out_stream, first, offset = None, None, 0
            for part in parts:
                with open_video(part) as source:
                    stream = source.streams.video[0]
                    shape = (stream.codec_context.name, stream.codec_context.extradata, stream.width,
                             stream.height, stream.time_base)
                    if out_stream is None:
                        out_stream, first = output.add_stream_from_template(stream), shape
                    elif shape != first:
                        raise LivecamError(f"{part} was not encoded as {parts[0]} was, so they cannot be joined")
                    rate, base = stream.average_rate or stream.guessed_rate, stream.time_base
                    step = round(1 / (rate * base)) if rate and base else 1  # a frame's length
                    end = offset
                    for packet in source.demux(stream):
                        if packet.size == 0 or packet.pts is None or packet.dts is None:
                            continue
                        packet.pts += offset
                        packet.dts += offset
                        end = max(end, packet.pts + (packet.duration or step))
                        packet.stream = out_stream
                        output.mux(packet)
                        frames += 1
                    offset = end
    except BaseException:
        file.close()
        partial.unlink(missing_ok=True)
        if file.error is not None:
            raise file.error from None
        raise
    file.close()
    if file.error is not None:
        partial.unlink(missing_ok=True)
        raise file.error
    os.replace(partial, target)
    return frames


def part_path(output: Path, part: int) -> Path:
    """The hidden file part ``part`` of a long file is recorded to, beside the file's output."""
    return output.with_name(f".{output.stem}.part{part:03d}{output.suffix}")


def _remove_parts(output: Path, count: int) -> None:
    """The ``count`` part files of ``output`` this run recorded, and their partial files (livecam's working
    files, by their hidden names)."""
    from livecam.sinks import partial_path

    for part in (part_path(output, i) for i in range(count)):
        for path in (part, partial_path(part)):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


@dataclass
class _Split:
    job: Job
    spans: list[Span]
    records: dict[int, Record] = field(default_factory=dict)


class Chunker:
    """``chunk_seconds``: long files handed out in parts, and joined as their parts come back.

    :attr:`work` is what the workers get: the files as they are, except that a file longer than ``seconds``
    becomes one job per span (:func:`plan_spans`), each recorded to a hidden part file.
    :meth:`take` is the workers' ``on_result``: a whole file's record passes on to ``on_result`` at once; a
    part's is held until all its file's parts are back, then the parts are joined into the file's output
    (no re-encoding) and the file's one record passes on. :meth:`close` ends the files a stop left with
    parts missing (interrupted, no output) and removes their part files. A failed join reads as ``describe``
    renders it.
    """

    def __init__(self, jobs: list[Job], seconds: float | None, settings: Settings,
                 on_result: Callable[[Record], None] | None = None, describe: Describe = str) -> None:
        self.settings = settings
        self.on_result = on_result
        self.describe = describe
        self.work: list[Job] = []
        self._splits: dict[str, _Split] = {}
        for job in jobs:
            spans = plan_spans(job.input, seconds) if seconds else []
            if len(spans) < 2:
                self.work.append(job)
                continue
            self._splits[job.input] = _Split(job, spans)
            log.info("%s: %d parts, cut at %s s", job.input, len(spans),
                     ", ".join(f"{span.seconds:.1f}" for span in spans[1:]))
            self.work.extend(replace(job, output=str(part_path(Path(job.output), i)), span=span, part=i)
                             for i, span in enumerate(spans))

    @property
    def split(self) -> int:
        """How many files are done in parts."""
        return len(self._splits)

    def take(self, record: Record) -> None:
        split = self._splits.get(record["input"]) if "part" in record else None
        if split is None:
            self._pass(record)
            return
        split.records[record["part"]] = record
        if len(split.records) == len(split.spans):
            del self._splits[split.job.input]
            self._pass(self._join(split))

    def close(self) -> None:
        for split in list(self._splits.values()):
            _remove_parts(Path(split.job.output), len(split.spans))
            self._pass(error_record(split.job, self.settings, INTERRUPTED, "interrupted"))
        self._splits.clear()

    def _pass(self, record: Record) -> None:
        if self.on_result is not None:
            self.on_result(record)

    def _join(self, split: _Split) -> Record:
        """The file's record from its parts' records, after joining the parts into its output."""
        job, parts = split.job, [split.records[i] for i in range(len(split.spans))]
        # the workers' settings: with the layer their engines resolved (see FileWorker)
        settings = next((part["settings"] for part in parts if isinstance(part.get("settings"), dict)), self.settings)
        record = base_record(job, settings, FAILED)
        counts: Counter[str] = Counter()
        second: Counter[str] = Counter()
        for part in parts:
            counts.update(part.get("class_counts") or {})
            second.update(part.get("compare_class_counts") or {})
        frames = sum(part.get("frames", 0) for part in parts)
        record.update({"frames": frames, "source_frames": sum(span.frames for span in split.spans),
                       "chunks": len(parts), "top_classes": top_classes(counts)})
        if second:
            record["compare_top_classes"] = top_classes(second)
        bad = next((part for part in parts if part["status"] != DONE), None)
        try:
            if bad is not None:
                self._failed(record, bad, split, parts)
            else:
                self._joined(record, parts, frames)
        finally:
            _remove_parts(Path(job.output), len(split.spans))
        starts = [part["started_at"] for part in parts if "started_at" in part]
        record["seconds"] = round(time.time() - min(starts), 3) if starts else 0.0
        if record["status"] == DONE and record["seconds"] > 0:
            record["fps"] = round(frames / record["seconds"], 2)
        record["finished"] = utc_now()
        return record

    @staticmethod
    def _failed(record: Record, bad: Record, split: _Split, parts: list[Record]) -> None:
        """A part failed or was stopped: the file did too, and says where."""
        status = INTERRUPTED if any(part["status"] == INTERRUPTED for part in parts) else FAILED
        where = split.spans[bad["part"]].seconds
        record.update({"status": status, "error": bad["error"] if status == INTERRUPTED
                       else f"the part from {where:.1f} s: {bad['error']}"})

    def _joined(self, record: Record, parts: list[Record], frames: int) -> None:
        """Every part is done: join them into the file's output (a failed join is a failed file)."""
        import av

        output = Path(record["output"])
        try:
            written = join([part_path(output, i) for i in range(len(parts))], output)
            if written != frames:
                output.unlink(missing_ok=True)
                raise LivecamError(f"joining the parts gave {written} frames of {frames}")
            record["status"] = DONE
        except (OSError, LivecamError, av.FFmpegError) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else self.describe(exc)
            record.update({"status": FAILED,
                           "error": f"could not join the parts into {output} ({' '.join(text.split())})"})
