"""Long recordings in parallel: cut at keyframes, each span decoded on its own, the parts joined without re-encoding.

``livecam annotate --chunk-seconds N`` splits a file longer than N seconds into
spans that workers annotate at the same time, and joins their recordings into
one output:

- :func:`plan_spans` reads the file's packets (no decoding) and cuts it at the
  first keyframe at least N seconds after the previous cut. A span is the
  frames whose presentation times lie in [its cut, the next cut): every frame
  belongs to exactly one span, also when B-frames reorder them.
- :class:`ClipSource` decodes one span: it seeks to the span's keyframe, drops
  the frames before the cut (leading B-frames of an open GOP) and stops at the
  first frame of the next span. PyAV and OpenCV use the same FFmpeg
  conversion to BGR, so the pixels are those ``livecam --source`` reads, and
  the times are too: presentation times from the file's first frame, as
  :class:`livecam.sources.CaptureSource` gives them. The span's last frame
  lasts until the next span's first.
- :func:`join` concatenates the parts' packets into one file, each part's
  times shifted by the length of those before it (each packet carries its
  duration, so a part ends where the next span begins): one output, every
  frame in order and at its time, nothing encoded twice. Each part begins with
  a keyframe (an encoder's first frame always is), so the joined file decodes
  from any part's start.
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from livecam.sinks.encode import CheckedFile, open_output
from livecam.errors import LivecamError
from livecam.sources import DEFAULT_VIDEO_FPS, Source, frame_time, last_duration, stated_of
from livecam.types import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Span:
    """A stretch of a file: the frames with presentation times in [start, end) (the stream's time base).

    ``start`` None: from the file's first frame; ``end`` None: to its last. ``first_frame`` is the index of the
    span's first frame in the whole file, ``frames`` how many the container's packets promise. ``origin`` is
    the presentation time of the file's first frame, from which frame times are counted.
    """

    start: int | None
    end: int | None
    first_frame: int
    frames: int
    seconds: float = 0.0  # where the span starts in the file, for messages
    origin: int = 0


def _open(path: str | os.PathLike) -> Any:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise LivecamError(f"cannot read {path} ({' '.join(str(exc).split())})") from None
    if not container.streams.video:
        container.close()
        raise LivecamError(f"{path} holds no video stream")
    return container


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
    spans = []
    for i, start in enumerate(points):
        end = points[i + 1] if i + 1 < len(points) else None
        first = bisect.bisect_left(ordered, start)
        last = bisect.bisect_left(ordered, end) if end is not None else len(ordered)
        spans.append(Span(None if i == 0 else start, end, first, last - first,
                          float((start - points[0]) * time_base), points[0]))
    return spans


def plan_spans(path: str | os.PathLike, seconds: float) -> list[Span]:
    """The spans of at least ``seconds`` that ``path`` cuts into at its keyframes; [] when it is not cut.

    A file that is shorter, has no keyframe late enough, cannot be read, or whose packets carry no
    presentation times is not cut (a worker then annotates it whole, and reports it if it is broken).
    """
    try:
        container = _open(path)
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


class ClipSource(Source):
    """The frames of one :class:`Span` of a video file, decoded with PyAV, indexed as in the whole file."""

    def __init__(self, path: str | os.PathLike, span: Span) -> None:
        self.path = Path(path)
        self.span = span
        self.description = f"{path} from {span.seconds:.1f} s"
        self._container = _open(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # as OpenCV decodes: frame threads on every core
        rate = self._stream.average_rate or self._stream.guessed_rate
        fps = float(rate) if rate else 0.0
        self._rate = fps if 0.5 <= fps <= 1000 else DEFAULT_VIDEO_FPS
        self.fps = self._rate
        self.frame_count = span.frames
        self.size = (self._stream.width, self._stream.height)

    def _time(self, frame: Any, index: int, previous: float | None) -> float:
        """A decoded frame's time in seconds from the file's first frame (see livecam.sources.frame_time)."""
        base = self._stream.time_base
        position = float((frame.pts - self.span.origin) * base)
        return frame_time(index, position, self._rate, float(base), previous)

    def _frames(self) -> Any:
        """The span's decoded frames (PyAV's), then the next span's first one, if any, marked by ``True``."""
        span = self.span
        first = True
        if span.start is not None:
            self._container.seek(span.start, stream=self._stream, backward=True)  # to the keyframe at the cut
        for frame in self._container.decode(self._stream):
            if frame.pts is None:
                raise LivecamError(f"{self.path}: a decoded frame has no time, so its span cannot be placed; "
                                   "annotate it without --chunk-seconds")
            if span.start is not None and frame.pts < span.start:
                continue  # before the cut: the previous span's
            if span.start is not None and first and frame.pts > span.start:
                raise LivecamError(f"{self.path}: seeking to {span.seconds:.3f} s landed after it; annotate "
                                   "it without --chunk-seconds")
            first = False
            if span.end is not None and frame.pts >= span.end:
                yield frame, True  # the next span's first frame: where this span's last one ends
                return
            yield frame, False

    def __iter__(self) -> Any:
        import av

        index, longest = self.span.first_frame, 0.0
        end = stated_of(self._container, self._stream).end
        try:
            frames = self._frames()
            item = next(frames, None)
            stamp = 0.0 if item is None or item[1] else self._time(item[0], index, None)
            while item is not None and not item[1]:
                after = next(frames, None)
                if after is not None:
                    following = self._time(after[0], index + 1, stamp)
                    longest = max(longest, following - stamp)
                    duration = following - stamp
                else:
                    following, duration = stamp, last_duration(stamp, end, longest, self._rate)
                yield Frame(item[0].to_ndarray(format="bgr24"), index, stamp, duration=duration)
                index += 1
                item, stamp = after, following
        except av.FFmpegError as exc:
            raise LivecamError(f"cannot decode {self.description} ({' '.join(str(exc).split())})") from None
        if index - self.span.first_frame != self.span.frames:
            log.warning("%s: decoded %d frames where the container holds %d", self.description,
                        index - self.span.first_frame, self.span.frames)

    def close(self) -> None:
        self._container.close()


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
                with _open(part) as source:
                    stream = source.streams.video[0]
                    shape = (stream.codec_context.name, stream.codec_context.extradata, stream.width,
                             stream.height, stream.time_base)
                    if out_stream is None:
                        out_stream, first = output.add_stream_from_template(stream), shape
                    elif shape != first:
                        raise LivecamError(f"{part} was not encoded as {parts[0]} was, so they cannot be joined")
                    rate = stream.average_rate or stream.guessed_rate
                    step = round(1 / (rate * stream.time_base)) if rate else 1  # a frame's length
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
