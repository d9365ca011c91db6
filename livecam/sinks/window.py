"""Showing a run in a window (OpenCV's HighGUI), and finding out first whether one can open here.

OpenCV's Qt aborts the whole process when it cannot reach a display, so
:func:`has_display` asks a child process before the window opens; and it
looks for its fonts in a folder opencv-python's wheels may leave empty, so
:func:`qt_font_dir` finds one that holds them.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterable

import cv2

from livecam.errors import LivecamError, option
from livecam.sinks.base import Sink
from livecam.types import Annotated

log = logging.getLogger(__name__)

FONT_ROOTS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".pfa", ".pfb")  # what Qt's own font database reads from its folder


def has_display() -> bool:
    """Can OpenCV open a window here? (OpenCV built with a GUI, and a display that answers.)"""
    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if not gui or gui.upper() == "NONE":
        return False
    if platform.system() in ("Windows", "Darwin"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    # Qt aborts the whole process when it cannot reach the display, so ask a child process first.
    probe = "import cv2; cv2.namedWindow('probe'); cv2.destroyAllWindows()"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _any_font(names: Iterable[str]) -> bool:
    return any(name.lower().endswith(FONT_SUFFIXES) for name in names)


def holds_fonts(folder: str) -> bool:
    """Does ``folder`` itself hold a font file Qt's own font database reads? (Qt does not look in subfolders.)"""
    try:
        return _any_font(os.listdir(folder))
    except OSError:
        return False


def qt_font_dir(user: str | None, current: str | None, roots: Iterable[str] = FONT_ROOTS) -> str | None:
    """The folder OpenCV's Qt should read its fonts from (``QT_QPA_FONTDIR``), or None when there is none.

    opencv-python's wheels set ``QT_QPA_FONTDIR`` to their own ``cv2/qt/fonts``
    when cv2 is imported (``current``); some releases ship fonts there
    (5.1.0.95 ships DejaVu), others none, and Qt, built without fontconfig,
    then prints a ``QFontDatabase: Cannot find font directory`` warning for
    each window and draws no text. The ``user``'s folder (``QT_QPA_FONTDIR``
    as set before cv2's import) wins when it exists; then ``current`` when it
    holds fonts. Otherwise: the first folder under ``roots`` holding
    DejaVuSans.ttf (the font Qt's warning suggests), else the first holding
    any font Qt reads, else the first root that exists (no fonts, but no
    warning).
    """
    if user and os.path.isdir(user):
        return user
    if current and holds_fonts(current):
        return current
    existing = [root for root in map(os.path.expanduser, roots) if os.path.isdir(root)]
    any_fonts = None
    for root in existing:
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()
            if "DejaVuSans.ttf" in files:
                return folder
            if any_fonts is None and _any_font(files):
                any_fonts = folder
    return any_fonts or (existing[0] if existing else None)


class WindowSink(Sink):
    """Show frames in a window; q, Esc or closing the window asks the loop to stop.

    ``font_dir``: the folder Qt should read its fonts from, when it exists
    (``QT_QPA_FONTDIR`` as the user set it, before cv2's import replaced it);
    else cv2's own folder when it holds fonts, else one found by :func:`qt_font_dir`.
    """

    QUIT_KEYS = {ord("q"), ord("Q"), 27}
    main_thread = True

    def __init__(self, title: str = "livecam", font_dir: str | None = None) -> None:
        if not has_display():
            raise LivecamError(
                "no display to show a window on (no DISPLAY, or OpenCV built without a GUI); "
                f"pass {option('no_show')}, and {option('output')} FILE to record"
            )
        self.title = title
        self._shown = False
        fonts = qt_font_dir(font_dir, os.environ.get("QT_QPA_FONTDIR"))
        if fonts:  # read by Qt when the first window opens
            os.environ["QT_QPA_FONTDIR"] = fonts
            log.debug("the window's Qt reads fonts from %s", fonts)
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)

    def write(self, annotated: Annotated) -> None:
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True  # the user closed the window
            return
        cv2.imshow(self.title, annotated.image)
        self._shown = True
        if (cv2.waitKey(1) & 0xFF) in self.QUIT_KEYS:
            self.stop_requested = True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
