"""One stretch of a video file as a source of its own: what a worker annotates of a long file cut in parts.

``livecam annotate --chunk-seconds`` (:mod:`livecam.annotate.parts`) cuts a long
file at keyframes into :class:`Span` s; a :class:`ClipSource` decodes one of
them. It seeks to the span's keyframe, drops the frames before the cut
(leading B-frames of an open GOP) and stops at the first frame of the next
span. PyAV and OpenCV use the same FFmpeg conversion to BGR, so the pixels are
those ``livecam --source`` reads, and the times are too: presentation times
from the file's first frame, as :class:`livecam.sources.CaptureSource` gives
them. The span's last frame lasts until the next span's first.

It is a source like the others (the pipeline, the recorder and the sinks take
it as they take a whole file); it lives here rather than beside the cutting,
so that the sources do not depend on the annotate stage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from livecam.errors import LivecamError, option
from livecam.sources import DEFAULT_VIDEO_FPS, Source, frame_time, last_duration, stated_of
from livecam.types import Frame

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame

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


def open_video(path: str | os.PathLike[str]) -> InputContainer:
    """``path`` opened with PyAV for reading, with a video stream; a one-line LivecamError when it cannot be."""
    import av  # here, not when the module loads: planning and a whole file's worker need no PyAV

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise LivecamError(f"cannot read {path} ({' '.join(str(exc).split())})") from None
    if not container.streams.video:
        container.close()
        raise LivecamError(f"{path} holds no video stream")
    return container


class ClipSource(Source):
    """The frames of one :class:`Span` of a video file, decoded with PyAV, indexed as in the whole file."""

    def __init__(self, path: str | os.PathLike[str], span: Span) -> None:
        self.path = Path(path)
        self.span = span
        self.description = f"{path} from {span.seconds:.1f} s"
        self._container = open_video(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # as OpenCV decodes: frame threads on every core
        rate = self._stream.average_rate or self._stream.guessed_rate
        fps = float(rate) if rate else 0.0
        self._rate = fps if 0.5 <= fps <= 1000 else DEFAULT_VIDEO_FPS
        self.fps = self._rate
        self.frame_count = span.frames
        self.size = (self._stream.width, self._stream.height)

    def _time(self, frame: VideoFrame, index: int, previous: float | None) -> float:
        """A decoded frame's time in seconds from the file's first frame (see livecam.sources.frame_time)."""
        base = self._stream.time_base
        if frame.pts is None or base is None:  # _frames lets no frame without a time through
            raise LivecamError(f"{self.path}: a decoded frame has no time")
        position = float((frame.pts - self.span.origin) * base)
        return frame_time(index, position, self._rate, float(base), previous)

    def _frames(self) -> Iterator[tuple[VideoFrame, bool]]:
        """The span's decoded frames (PyAV's), then the next span's first one, if any, marked by ``True``."""
        span = self.span
        first = True
        if span.start is not None:
            self._container.seek(span.start, stream=self._stream, backward=True)  # to the keyframe at the cut
        for frame in self._container.decode(self._stream):
            if frame.pts is None:
                raise LivecamError(f"{self.path}: a decoded frame has no time, so its span cannot be placed; "
                                   f"annotate it without {option('chunk_seconds')}")
            if span.start is not None and frame.pts < span.start:
                continue  # before the cut: the previous span's
            if span.start is not None and first and frame.pts > span.start:
                raise LivecamError(f"{self.path}: seeking to {span.seconds:.3f} s landed after it; annotate "
                                   f"it without {option('chunk_seconds')}")
            first = False
            if span.end is not None and frame.pts >= span.end:
                yield frame, True  # the next span's first frame: where this span's last one ends
                return
            yield frame, False

    def __iter__(self) -> Iterator[Frame]:
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
