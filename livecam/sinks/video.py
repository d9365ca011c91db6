"""Recording to a video file: the recorder of a run, and quick clips for tests and the demo.

A recording made with :func:`record_source` keeps the source's own frame
times (a variable-frame-rate file plays in step with the original), unless a
rate is asked for; live sources are recorded at the rate measured over their
first frames. The recording's size is its first frame's: a later frame of
another shape (a folder of images) is letterboxed into it, never stretched.
Frames go to a hidden partial file that replaces the target only when the
recording is complete (:class:`VideoFileSink`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from livecam.errors import LivecamError, RunError, option
from livecam.sinks.base import Recordable, Sink, check_output_path, partial_path
from livecam.sinks.encode import DEFAULT_CODEC, VideoEncoder, check_frame_size, is_disk_full, resolve_codec
from livecam.text import plural
from livecam.types import Annotated

log = logging.getLogger(__name__)

FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}  # write_frames: quick test clips
RATE_WINDOW_S = 2.0  # a live source's rate is measured over this much of its start ...
RATE_WINDOW_FRAMES = 60  # ... or this many frames, whichever comes first
FALLBACK_FPS = 25.0


def write_frames(path: Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write BGR uint8 frames of one size to a video file in one go (no partial-file dance)."""
    writer: cv2.VideoWriter | None = None
    try:
        for frame in frames:
            if writer is None:
                fourcc = cv2.VideoWriter.fourcc(*FOURCC.get(path.suffix.lower(), "mp4v"))
                writer = cv2.VideoWriter(str(path), fourcc, fps, (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"OpenCV could not open a video writer for {path}")
            writer.write(frame)
    finally:
        if writer is not None:
            writer.release()
    return path


def measured_fps(timestamps: list[float]) -> float:
    """Frames per second from the capture times of consecutive frames."""
    if len(timestamps) < 2 or timestamps[-1] <= timestamps[0]:
        return FALLBACK_FPS
    fps = (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])
    return float(min(max(fps, 1.0), 240.0))


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit inside ``size`` (width, height), keeping its aspect ratio, centred on black.

    The side that does not fill its dimension, and the border before it, are rounded to the nearest pixel
    (halves to even), as Pillow's ``ImageOps.pad`` rounds them.
    """
    width, height = size
    h, w = image.shape[:2]
    inner_w, inner_h = width, height
    if w / h > width / height:
        inner_h = max(1, round(h / w * width))
    elif w / h < width / height:
        inner_w = max(1, round(w / h * height))
    shrink = inner_w < w or inner_h < h  # average the pixels going down, interpolate going up
    scaled = cv2.resize(image, (inner_w, inner_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if (inner_w, inner_h) == (width, height):
        return scaled
    out = np.zeros((height, width, *image.shape[2:]), image.dtype)
    x, y = round((width - inner_w) / 2), round((height - inner_h) / 2)
    out[y:y + inner_h, x:x + inner_w] = scaled
    return out


class VideoFileSink(Sink):
    """Record annotated frames to a video file, safely.

    Frames go to a hidden partial file beside the target, which replaces the
    target only when the sink closes (also after Ctrl-C), so an existing file
    is never lost to a run that fails, and the finished file is complete and
    playable. With ``fps=None`` (live sources) the rate is measured over the
    first frames before the file is opened, so the recording plays in real time.

    ``keep_times``: each frame is placed at its timestamp (counted from the
    first frame's) and shows until the next one, the last for its own
    ``duration`` (a frame at ``fps`` if it has none); ``fps`` is then the
    nominal rate, for the keyframe spacing and the rate the file states. After
    ``close``, ``fps`` is the recording's average rate. Without it frame i is
    at i / ``fps``.

    ``codec`` (default: H.264 for .mp4, .mov and .mkv, Motion JPEG for .avi)
    and ``crf`` are checked here, before any frame. When the disk fills up,
    ``write`` raises :class:`RunError` and the frames written so far stay
    playable in the target file (see :mod:`livecam.sinks.encode`), unless
    ``keep_incomplete`` is False: then, as after :meth:`discard`, the target
    is left as it was.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None, overwrite: bool = False,
                 source_path: Path | None = None, codec: str | None = None, crf: int | None = None,
                 keep_incomplete: bool = True, keep_times: bool = False) -> None:
        self.path = check_output_path(Path(path), overwrite, source_path)
        self.codec = resolve_codec(self.path.suffix, codec, crf)
        self.crf = crf
        self.partial = partial_path(self.path)
        try:
            self.partial.open("wb").close()
        except OSError as exc:
            raise LivecamError(f"cannot write {self.path} ({exc.strerror or exc}); "
                               f"choose another {option('output')}") from None
        self.fps = fps
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self.failed = False
        self.keep = True  # False after discard(): the partial file is deleted, the target left as it was
        self.keep_incomplete = keep_incomplete  # after a write failed: keep what was written (else as discard)
        self.keep_times = keep_times
        self._encoder: VideoEncoder | None = None
        self._pending: list[tuple[np.ndarray, float]] = []
        self._first_time: float | None = None  # keep_times: the first frame's timestamp, the recording's 0
        self._last: tuple[float, float | None] | None = None  # the last frame's timestamp and duration

    def _open(self, size: tuple[int, int]) -> None:
        even = check_frame_size(size, self.codec, self.path)
        if even != size:
            log.info("recording %dx%d frames as %dx%d: the codec needs even sizes", *size, *even)
            size = even
        self._encoder = VideoEncoder(self.partial, size, float(self.fps or FALLBACK_FPS), self.codec, self.crf,
                                     timed=self.keep_times)
        self.size = size

    def _put(self, image: np.ndarray, stamp: float) -> None:
        assert self._encoder is not None and self.size is not None
        width, height = self.size
        if image.shape[1] - width in (0, 1) and image.shape[0] - height in (0, 1):
            image = np.ascontiguousarray(image[:height, :width])  # drop an odd last row or column
        else:
            image = letterbox(image, self.size)
        if self._first_time is None:
            self._first_time = stamp
        try:
            self._encoder.write(image, stamp - self._first_time)
        except OSError as exc:
            self.failed = True
            raise self._write_error(exc) from None
        self.frames_written += 1

    def _write_error(self, exc: OSError) -> RunError:
        kept = f"{plural(self.frames_written, 'frame')}, of which {self.path} holds all up to its last whole fragment"
        if is_disk_full(exc):
            return RunError(f"the disk is full: could not write {self.path} ({exc.strerror}); stopped after {kept}; "
                            "free some space")
        return RunError(f"could not write {self.path} ({exc.strerror or exc}); stopped after {kept}")

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        if self.fps is None:
            self.fps = measured_fps([stamp for _, stamp in self._pending])
        first = self._pending[0][0]
        self._open((first.shape[1], first.shape[0]))
        pending, self._pending = self._pending, []
        for image, stamp in pending:
            self._put(image, stamp)

    def write(self, annotated: Annotated) -> None:
        if self.failed:
            return
        image, stamp = annotated.image, annotated.frame.timestamp
        self._last = (stamp, annotated.frame.duration)
        if self._encoder is not None:
            self._put(image, stamp)
            return
        self._pending.append((image, stamp))
        span = stamp - self._pending[0][1]
        if self.fps is not None or span >= RATE_WINDOW_S or len(self._pending) >= RATE_WINDOW_FRAMES:
            self._flush_pending()

    def discard(self) -> None:
        """Give the recording up: when the sink closes, its partial file is deleted and the target is not touched
        (``livecam annotate``: a file that did not go through whole leaves no output)."""
        self.keep = False

    def close(self) -> None:
        """Finish the file: write what is pending, close it, move it into place (or delete it, if discarded)."""
        error: RunError | None = None
        try:
            if self.keep and not self.failed:
                self._flush_pending()
        finally:
            encoder, self._encoder = self._encoder, None
            if encoder is not None:
                if self.failed or not self.keep:
                    encoder.abandon()
                else:
                    try:
                        encoder.close(self._last[1] if self.keep_times and self._last else None)
                        self._average_rate()
                    except OSError as exc:  # the last fragment did not fit: the ones before it still play
                        self.failed = True
                        error = self._write_error(exc)
                        encoder.abandon()
                    except BaseException:  # not the disk: nothing says what the file holds, so it goes
                        self.failed, self.keep = True, False
                        encoder.abandon()
                        raise
            if self.frames_written and self.keep and (self.keep_incomplete or not self.failed):
                os.replace(self.partial, self.path)
            else:
                self.partial.unlink(missing_ok=True)
        if error is not None:
            raise error

    def _average_rate(self) -> None:
        """keep_times: ``fps`` becomes the frames written over the time they span."""
        if not self.keep_times or self._last is None or self._first_time is None or self.frames_written < 2:
            return
        stamp, duration = self._last
        span = stamp - self._first_time + (duration or 1.0 / float(self.fps or FALLBACK_FPS))
        if span > 0:
            self.fps = self.frames_written / span


def record_source(source: Recordable, path: str | os.PathLike[str], fps: float | None = None, overwrite: bool = False,
                  codec: str | None = None, crf: int | None = None, keep_incomplete: bool = True,
                  source_path: Path | None = None) -> VideoFileSink:
    """The recorder of ``source`` to ``path``, timed as the source asks.

    ``fps``: the frames one after another at that constant rate. Otherwise a live source is
    recorded at the rate measured over its first frames, and a file or images at their own frame times.
    Frames smaller than the codec takes are refused here, before any file is made, when the source knows its
    frame size (a LivecamError).
    """
    chosen = resolve_codec(Path(path).suffix, codec, crf) if Path(path).suffix.lower() in DEFAULT_CODEC else None
    if chosen is not None and source.size is not None:
        check_frame_size(source.size, chosen, Path(path))
    keep_times = fps is None and not source.is_live
    return VideoFileSink(path, fps=fps or (None if source.is_live else source.fps), overwrite=overwrite,
                         source_path=source.path if source_path is None else source_path, codec=codec, crf=crf,
                         keep_incomplete=keep_incomplete, keep_times=keep_times)

