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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from livecam.errors import LivecamError, option
from livecam.outputs import Output, check_output
from livecam.render import draw_text_box
from livecam.sinks.base import Sink
from livecam.sinks.records import save_maps
from livecam.text import ordinal
from livecam.types import Annotated

if TYPE_CHECKING:
    from livecam.controls import Controls

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


# the window's keys, as h shows them (the live controls': livecam.controls)
KEYS_HELP = ("q, Esc  quit", "n  next method", "1-9  the k-th class, 0  the top class", "p  panels",
             "+ -  opacity", "c  colour map", "m  smoothing", "space  pause", "s  snapshot", "h  these keys")
MESSAGE_S = 3.0  # how long the answer to a key stays on the frame
SNAPSHOT = "snapshot-{:06d}{}"  # the frame's index, and -2, -3 ... for more of one (paused) frame


def check_snapshots_folder(folder: Path) -> Path:
    """Refuse a snapshots folder that is a file or cannot take new files (livecam.outputs' rule)."""
    return check_output(Output("snapshots", folder, folder=True))


class WindowSink(Sink):
    """Show frames in a window; q, Esc or closing the window asks the loop to stop.

    ``font_dir``: the folder Qt should read its fonts from, when it exists
    (``QT_QPA_FONTDIR`` as the user set it, before cv2's import replaced it);
    else cv2's own folder when it holds fonts, else one found by :func:`qt_font_dir`.

    With ``controls`` (:class:`~livecam.controls.Controls`) the keys change the view live (h shows them:
    :data:`KEYS_HELP`); the answer to each key, or why it was refused, stays on the frame for a few seconds.
    s saves a snapshot into ``snapshots`` (default: the current folder): the frame as shown
    (``snapshot-000123.png``), the source frame (``snapshot-000123-frame.png``) and the maps
    (``snapshot-000123.npz``, as ``--save-maps`` writes them).
    """

    QUIT_KEYS = {ord("q"), ord("Q"), 27}
    main_thread = True

    def __init__(self, title: str = "livecam", font_dir: str | None = None, controls: Controls | None = None,
                 snapshots: Path | None = None) -> None:
        self.controls = controls
        self.snapshots = check_snapshots_folder(snapshots) if snapshots is not None else None
        self.help = False
        self.message: tuple[str, float] | None = None  # the answer to the last key, and when it goes
        self.snapshot_files: list[Path] = []
        self._last: Annotated | None = None
        self._paused = False
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
        self._last = annotated
        self._show(1)

    def idle(self) -> None:
        """Paused: the last frame stays, the keys are read."""
        self._show(50)

    def poll(self) -> None:
        """The next frame is not due yet: the keys are read (the last frame drawn again only when one was)."""
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True
            return
        key = cv2.waitKey(1)
        if key != -1:
            self.key(key & 0xFF)
            if self._last is not None:  # the help, a message or the pause shows at once
                cv2.imshow(self.title, self._overlaid(self._last.image))

    def _show(self, wait_ms: int) -> None:
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.stop_requested = True  # the user closed the window
            return
        if self._last is not None:
            cv2.imshow(self.title, self._overlaid(self._last.image))
            self._shown = True
        paused = self.controls is not None and self.controls.paused
        if paused != self._paused:  # the title says so too
            self._paused = paused
            cv2.setWindowTitle(self.title, f"{self.title} (paused)" if paused else self.title)
        key = cv2.waitKey(wait_ms)
        if key != -1:
            self.key(key & 0xFF)

    def _overlaid(self, image: np.ndarray) -> np.ndarray:
        """The frame with the keys (h) and the answer to the last key drawn on a copy (the recording has neither)."""
        message = self.message
        if message is not None and time.monotonic() > message[1]:
            message = self.message = None
        if self.controls is not None and self.controls.paused:
            message = (f"paused (space resumes){'; ' + message[0] if message else ''}", 0.0)
        if not (self.help or message):
            return image
        image = image.copy()
        if self.help:
            draw_text_box(image, list(KEYS_HELP), "top-right")
        if message:
            draw_text_box(image, [message[0]], "bottom-right")
        return image

    def say(self, text: str) -> None:
        self.message = (text, time.monotonic() + MESSAGE_S)

    def key(self, key: int) -> None:
        """What a key does (see :data:`KEYS_HELP`); a refused change is said on the frame."""
        if key in self.QUIT_KEYS:
            self.stop_requested = True
        elif key in (ord("h"), ord("H"), ord("?")):
            self.help = not self.help
        elif key in (ord("s"), ord("S")):
            self._snapshot()
        elif self.controls is not None:
            try:
                self._change(key, self.controls)
            except LivecamError as exc:
                self.say(str(exc))

    def _change(self, key: int, controls: Controls) -> None:
        steps = {ord("n"): ("method", 1), ord("N"): ("method", -1), ord("p"): ("panels", 1),
                 ord("+"): ("alpha", 1), ord("="): ("alpha", 1), ord("-"): ("alpha", -1), ord("c"): ("colormap", 1),
                 ord("C"): ("colormap", -1), ord("m"): ("smooth_s", 1), ord(" "): ("paused", 1)}
        if ord("0") <= key <= ord("9"):
            settings = controls.change({"rank": key - ord("0")})
            self.say("each frame's top class" if settings.rank <= 1 else
                     f"each frame's {ordinal(settings.rank)} most probable class")
            return
        if key not in steps:
            return
        name, direction = steps[key]
        settings = controls.step(name, direction)
        value = getattr(settings, name)
        if name == "method" and value != controls.applied.method:
            self.say(f"method {value} (preparing; {controls.applied.method} until then)")
        elif name == "alpha":
            self.say(f"opacity {settings.alpha:.1f}")
        elif name == "smooth_s":
            self.say(f"smoothing {settings.smooth_s:g} s")
        elif name == "panels":
            self.say(f"panels {'on' if settings.panels else 'off'}")
        elif name != "paused":
            self.say(f"{name} {value}")

    def _snapshot(self) -> None:
        """The frame as shown, the source frame and its maps, into the snapshots folder."""
        annotated = self._last
        if annotated is None:
            return
        folder = self.snapshots or Path.cwd()
        index, n = annotated.frame.index, 1

        def named(n: int) -> list[Path]:
            stem = SNAPSHOT.format(index, "" if n == 1 else f"-{n}")
            return [folder / f"{stem}.png", folder / f"{stem}-frame.png", folder / f"{stem}.npz"]

        while any(path.exists() for path in named(n)):
            n += 1  # never replace a file: another snapshot of one (paused) frame, or one from an earlier run
        files = named(n)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for path, image in zip(files, (annotated.image, annotated.frame.image), strict=False):
                ok, data = cv2.imencode(".png", image)
                if not ok:
                    raise OSError(f"OpenCV could not encode {path.name}")
                path.write_bytes(data.tobytes())
            save_maps(files[2], annotated)
        except OSError as exc:
            self.say(f"the snapshot was not saved: {getattr(exc, 'strerror', None) or exc}")
            log.warning("the snapshot was not saved in %s: %s", folder, getattr(exc, "strerror", None) or exc)
            return
        self.snapshot_files.extend(files)
        self.say(f"saved {files[0]}")
        log.info("snapshot of frame %d: %s", index, ", ".join(str(f) for f in files))

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
