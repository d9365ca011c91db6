"""Where annotated frames go: a video file, a window, a browser, a log beside the video.

Each sink is a context manager with ``write(annotated)`` and
``stop_requested`` (:class:`Sink`, in :mod:`livecam.sinks.base`). They live by
kind: :mod:`livecam.sinks.video` (the recording, timed as its source, and
:func:`write_frames` for quick clips), :mod:`livecam.sinks.window` (an OpenCV
window), :mod:`livecam.sinks.serve` (a page and an MJPEG stream over HTTP),
:mod:`livecam.sinks.records` (a JSON Lines log and the raw maps), with the
encoder itself in :mod:`livecam.sinks.encode`.
"""

from __future__ import annotations

from livecam.sinks.base import Recordable, Sink, check_output_path, partial_path
from livecam.sinks.video import VideoFileSink, letterbox, measured_fps, record_source, write_frames
from livecam.sinks.window import WindowSink, has_display, qt_font_dir

__all__ = ["Recordable", "Sink", "VideoFileSink", "WindowSink", "check_output_path", "has_display", "letterbox",
           "measured_fps", "partial_path", "qt_font_dir", "record_source", "write_frames"]
