"""Encoding BGR frames to a video file with PyAV (FFmpeg, with libx264, in its wheels).

The default for .mp4, .mov and .mkv is H.264 in yuv420p, which browsers,
slide decks and phones play; .avi keeps Motion JPEG. ``--codec`` and
``--crf`` choose otherwise.

MP4 and MOV are written *fragmented*: the index (``moov``) is at the front of
the file and every keyframe (one every two seconds at the most) starts a
fragment with its own small index. A file cut short, because the disk filled
up or the process was killed, therefore plays up to its last whole fragment,
where a plain MP4, whose index is written last, would not play at all.
Browsers, VLC, QuickTime, FFmpeg and OpenCV read it.

A recording keeps the times it is given (``VideoEncoder(..., timed=True)``):
each frame is stamped with its own presentation time and lasts until the
next, the last for the duration it is given, so a variable-frame-rate source
comes out as long as it went in, every frame where it was. The clock is a
multiple of the nominal rate's, so the frames of a constant-rate source still
fall on whole ticks. AVI has no per-frame times: there a frame takes the
nearest free slot of the nominal rate (FFmpeg marks the empty slots).
Untimed, frame i is at i / fps.

Measured at 1280x720 on the 2-core EPYC, the whole pipeline in turns
(benchmarks/results/recording-h264-epyc-2core.md): x264's ``ultrafast`` preset
is the default, 71 FPS end to end against 66 for ``superfast``, whose files
(without B-frames, which a fragmented MP4 cannot shift) are only 17% smaller.
"""

from __future__ import annotations

import errno
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from livecam.errors import LivecamError, option

CODECS = {"h264": "libx264", "hevc": "libx265", "mjpeg": "mjpeg", "mp4v": "mpeg4"}
DEFAULT_CODEC = {".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".avi": "mjpeg"}
CONTAINER_CODECS = {  # what each container can hold and players expect to find there
    ".mp4": ("h264", "hevc", "mp4v"),
    ".mov": ("h264", "hevc", "mjpeg", "mp4v"),
    ".mkv": ("h264", "hevc", "mjpeg", "mp4v"),
    ".avi": ("mjpeg", "mp4v", "h264"),
}
FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
CRF_CODECS = ("h264", "hevc")
DEFAULT_CRF = {"h264": 23, "hevc": 28}  # x264's and x265's own defaults
DEFAULT_PRESET = "ultrafast"
ENCODER_THREADS = 1  # the writer thread's own: the engine has the other core
KEYFRAME_SECONDS = 2.0  # a keyframe (and an MP4 fragment) at least this often
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
# Motion JPEG and MPEG-4 Part 2 have no CRF: a fixed quantizer (2 best .. 31 worst) plays that part.
QSCALE = {"mjpeg": 3, "mp4v": 4}
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# The smallest width and height each encoder opens with, found by trying PyAV 18 (FFmpeg 8) at yuv420p (yuvj420p
# for mjpeg) with this module's settings: x265 refuses below 16, x264 and mpeg4 take any even size, mjpeg any size.
MIN_SIDE = {"h264": 2, "hevc": 16, "mjpeg": 1, "mp4v": 2}
TIMED_TICKS = 90_000  # a timed recording's clock: at least this many ticks a second (MPEG's 90 kHz) ...
MPEG4_MAX_TICKS = 65_535  # ... but MPEG-4 Part 2 writes its clock's rate in 16 bits


def resolve_codec(suffix: str, codec: str | None, crf: int | None) -> str:
    """The codec for a file with ``suffix``: ``codec`` if the container takes it, else the container's default."""
    suffix = suffix.lower()
    chosen = codec or DEFAULT_CODEC[suffix]
    if chosen not in CONTAINER_CODECS[suffix]:
        fits = ", ".join(s for s, codecs in CONTAINER_CODECS.items() if chosen in codecs)
        raise LivecamError(f"{option('codec')} {chosen} cannot go in a {suffix} file; use {fits}, or "
                           f"{option('codec')} {' or '.join(CONTAINER_CODECS[suffix])}")
    if crf is not None and chosen not in CRF_CODECS:
        raise LivecamError(f"{option('crf')} sets the quality of h264 and hevc, not of {chosen}; leave it out, or "
                           f"pass {option('codec')} h264")
    return chosen


def frame_rate(fps: float) -> Fraction:
    """A frame rate as the fraction FFmpeg wants: 29.97 -> 30000/1001, 25.0 -> 25."""
    return Fraction(fps).limit_denominator(1001)


def time_base(fps: float, codec: str, suffix: str, timed: bool) -> Fraction:
    """The clock a recording counts in: a frame at ``fps`` is a whole number of ticks.

    Untimed recordings and AVI (whose frames sit in slots of a fixed rate) tick once a frame. Timed ones tick
    at the smallest multiple of the rate's numerator that reaches 90 kHz (65535 at most for mp4v), so a
    variable-rate source keeps its times to about 11 microseconds.
    """
    rate = frame_rate(fps)
    if not timed or FORMATS[suffix.lower()] == "avi":
        return 1 / rate
    ticks = rate.numerator * math.ceil(TIMED_TICKS / rate.numerator)
    if codec == "mp4v" and ticks > MPEG4_MAX_TICKS:
        ticks = rate.numerator * (MPEG4_MAX_TICKS // rate.numerator) or MPEG4_MAX_TICKS
    return Fraction(1, ticks)


def stamp(seconds: float, clock: Fraction, previous: int | None) -> int:
    """A frame's time as a tick of ``clock``, later than the ``previous`` frame's: presentation times must
    increase strictly, even where two frames round to one tick (AVI's slots)."""
    tick = round(seconds / clock)
    return tick if previous is None or tick > previous else previous + 1


def check_frame_size(size: tuple[int, int], codec: str, path: Path) -> tuple[int, int]:
    """The size frames of ``size`` (width, height) are recorded at: even (the codecs want it), or a LivecamError
    when that is below what ``codec`` opens with."""
    width, height = size
    even = (width - width % 2, height - height % 2)
    side = max(MIN_SIDE[codec], 2)
    if min(even) < side:
        fix = f"pass {option('codec')} h264 (from 2x2), or give a larger source" if min(even) >= 2 else \
            f"give a larger source, or leave out {option('output')}"
        raise LivecamError(f"cannot record {path}: the frames are {width}x{height} pixels and {codec} needs at least "
                           f"{side}x{side}; {fix}")
    return even


def write_all(file: Any, data: bytes) -> None:
    """Write every byte of ``data`` to an unbuffered ``file``: a short write (a regular file takes all at once,
    but not at the edge of a full disk) is continued until done or an OSError, never dropped."""
    view = memoryview(data)
    while view:
        view = view[file.write(view):]


class CheckedFile:
    """The file FFmpeg writes through, so that no write error is lost.

    FFmpeg keeps a write error in its I/O context and reports it late, or not
    at all when it happens while the last fragment and the trailer are written
    (PyAV 18: ``close()`` returns quietly with the file cut short). Written
    through this object, every failed write raises at once, and is kept in
    ``error`` for ``VideoEncoder`` to raise in turn.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            write_all(self._file, data)
        except OSError as exc:
            self.error = self.error or exc
            raise
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


def open_output(file: CheckedFile, suffix: str) -> Any:
    """A PyAV output container writing through ``file`` in the format of ``suffix``: MP4 and MOV fragmented."""
    import av

    suffix = suffix.lower()
    options = {"movflags": FRAGMENTED} if FORMATS[suffix] in ("mp4", "mov") else {}
    return av.open(file, "w", format=FORMATS[suffix], options=options)


class VideoEncoder:
    """Frames of one even size in, a video file out; ``close()`` finishes the file.

    ``timed``: each ``write`` gives the frame's time in seconds from the recording's start, and ``close`` the
    last frame's duration; otherwise frame i is at i / ``fps``. Either way every packet carries its duration, so
    the file lasts until the end of its last frame.
    """

    def __init__(self, path: Path, size: tuple[int, int], fps: float, codec: str = "h264", crf: int | None = None,
                 preset: str | None = None, threads: int | None = None, timed: bool = False) -> None:

        self.path, self.size, self.codec, self.timed = path, size, codec, timed
        self._file = CheckedFile(path)
        self._container = open_output(self._file, path.suffix)
        rate = frame_rate(fps)
        stream = self._container.add_stream(CODECS[codec], rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        context = stream.codec_context
        self.clock = time_base(fps, codec, path.suffix, timed)
        context.time_base = self.clock
        context.gop_size = max(1, round(fps * KEYFRAME_SECONDS))
        # No B-frames: a fragmented MP4 has no edit list to shift their decoding delay away, so with them the
        # first frame would show at 2/rate s, and the frames' times would be off by as much. Without them the
        # packets come out in presentation order.
        context.max_b_frames = 0
        context.thread_count = threads or ENCODER_THREADS
        if codec in CRF_CODECS:
            quality = crf if crf is not None else DEFAULT_CRF[codec]
            context.options = {"preset": preset or DEFAULT_PRESET, "crf": str(quality)}
            if codec == "hevc":
                context.options = {**context.options, "x265-params": "log-level=none"}
                stream.codec_tag = "hvc1"  # what Apple's players and browsers look for
        else:
            context.qmin = context.qmax = QSCALE[codec]
        self._stream = stream
        self._yuv = not codec == "mjpeg"
        self._frame_ticks = max(1, round(1 / (rate * self.clock)))  # one frame at the nominal rate
        self._held: Any = None  # the last frame written: encoded once the next one says how long it lasts
        self._durations: dict[int, int] = {}  # ticks, by presentation time, of the frames in the encoder
        self.frames = 0

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Encode one BGR uint8 frame of ``size``; ``time``: its time in seconds (timed encoders)."""
        import av

        if self._yuv:  # OpenCV converts to I420 faster than swscale does from bgr24
            yuv = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), np.uint8)  # uint8 in, uint8 out
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        previous = None if self._held is None else self._held.pts
        if self.timed:
            if time is None:
                raise ValueError("a timed encoder needs each frame's time")
            frame.pts = stamp(time, self.clock, previous)
        else:
            frame.pts = self.frames * self._frame_ticks
        if self._held is not None:
            self._encode(self._held, frame.pts - self._held.pts)
        self._held = frame
        self.frames += 1

    def _encode(self, frame: Any, ticks: int | None) -> None:
        """Encode ``frame`` (None: flush) lasting ``ticks``, and write the packets the encoder gives back."""
        if frame is not None:
            self._durations[frame.pts] = ticks or self._frame_ticks
        for packet in self._stream.encode(frame):
            packet.duration = self._durations.pop(packet.pts, self._frame_ticks)
            self._container.mux(packet)
        self._check()

    def _check(self) -> None:
        if self._file.error is not None:
            raise self._file.error

    def close(self, duration: float | None = None) -> None:
        """Flush the encoder and write the file's trailer; raises OSError if any of it could not be written.

        ``duration``: how long the last frame shows, in seconds (default: one frame at the nominal rate).
        """
        try:
            if self._held is not None:
                held, self._held = self._held, None
                self._encode(held, max(1, round(duration / self.clock)) if duration else None)
            self._encode(None, None)
        finally:
            try:
                self._container.close()
            finally:
                self._file.close()
        self._check()

    def abandon(self) -> None:
        """Close after a write failed: keep the whole fragments the file holds, cut the torn one (MP4, MOV)."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the disk is full or gone: what is written is what there is
            pass
        finally:
            self._file.close()
        if FORMATS[self.path.suffix.lower()] in ("mp4", "mov"):
            trim_to_whole_fragments(self.path)


def trim_to_whole_fragments(path: Path) -> int:
    """Cut an MP4 whose writing failed after its last complete box that is not a fragment header.

    ISO/IEC 14496-12 boxes start with a 32-bit size (1: a 64-bit size follows; 0: to the end of the
    file) and a 4-character type. A box that runs past the end of the file is torn; a ``moof`` (a
    fragment's index) is kept only with the ``mdat`` after it. Truncating needs no free space, and
    leaves a file whose every frame decodes. Returns the new size.
    """
    size = path.stat().st_size
    keep = offset = 0
    with path.open("rb+") as file:
        while offset + 8 <= size:
            file.seek(offset)
            header = file.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1:
                length = int.from_bytes(header[8:16], "big") if len(header) == 16 else 0
            elif length == 0:
                length = size - offset
            if length < 8 or offset + length > size:
                break
            offset += length
            if kind != b"moof":
                keep = offset
        file.truncate(keep)
    return keep


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL
