"""The window: none without a display, Qt given fonts, and on a virtual X display frames are shown at the file's
own rate, and q or Esc ends the run cleanly.

The X display tests need Xvfb and xdotool (Debian's xvfb and xdotool packages; .ci/run installs them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from livecam.errors import LivecamError
from livecam.sinks import WindowSink, has_display, qt_font_dir
from livecam.sinks.window import holds_fonts
from tests.conftest import make_video, read_video, small_clip

needs_x = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool")


def test_no_display_means_no_window(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    with pytest.raises(LivecamError, match="no display.*pass no_show, and output FILE"):
        WindowSink()


def test_qt_reads_fonts_from_a_folder_that_holds_them(tmp_path: Path) -> None:
    """QT_QPA_FONTDIR: the user's folder when it exists; cv2's own when it holds fonts; else one with DejaVu Sans,
    any fonts, or at least one that exists (Qt does not look in subfolders, so the folder itself must hold the
    files)."""
    share, local, users = tmp_path / "share", tmp_path / "local", tmp_path / "users"
    (share / "misc").mkdir(parents=True)
    (share / "misc" / "README").write_text("no fonts here")
    (share / "a-other").mkdir()
    (share / "a-other" / "Other.OTF").write_bytes(b"font")
    (share / "truetype" / "dejavu").mkdir(parents=True)
    (share / "truetype" / "dejavu" / "DejaVuSans.ttf").write_bytes(b"font")
    local.mkdir()
    users.mkdir()
    roots = [str(tmp_path / "missing"), str(local), str(share)]
    wheels = tmp_path / "cv2" / "qt" / "fonts"  # what opencv-python's import sets; its wheel may lack it
    assert qt_font_dir(str(users), str(wheels), roots) == str(users)
    assert qt_font_dir(None, str(users), roots) == str(share / "truetype" / "dejavu")  # empty, and not the user's
    assert qt_font_dir(str(tmp_path / "typo"), str(wheels), roots) == str(share / "truetype" / "dejavu")
    assert qt_font_dir(None, None, roots) == str(share / "truetype" / "dejavu")
    wheels.mkdir(parents=True)
    assert qt_font_dir(None, str(wheels), roots) == str(share / "truetype" / "dejavu")  # a wheel's empty folder
    (wheels / "DejaVuSans.ttf").write_bytes(b"font")
    assert qt_font_dir(None, str(wheels), roots) == str(wheels)  # a wheel that ships fonts (opencv-python 5.1)
    assert qt_font_dir(str(users), str(wheels), roots) == str(users)
    (wheels / "DejaVuSans.ttf").unlink()
    (share / "truetype" / "dejavu" / "DejaVuSans.ttf").unlink()
    assert qt_font_dir(None, str(wheels), roots) == str(share / "a-other")
    (share / "a-other" / "Other.OTF").unlink()
    assert qt_font_dir(None, str(wheels), roots) == str(local)
    assert qt_font_dir(None, str(wheels), [str(tmp_path / "missing")]) is None


@pytest.fixture(scope="module")
def display():
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = f":{number}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run(["xdotool", "getmouselocation"], env={**os.environ, "DISPLAY": name},
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    yield name
    server.terminate()
    server.wait(timeout=10)


def _find_window(env: dict, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = subprocess.run(["xdotool", "search", "--name", "livecam"], env=env, capture_output=True, text=True)
        if found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.3)
    proc.kill()
    stdout, stderr = proc.communicate()
    raise AssertionError(f"the livecam window never appeared; livecam said: {stdout} {stderr}")


@needs_x
@pytest.mark.slow
@pytest.mark.parametrize("key", ["q", "Escape"])
def test_key_closes_the_window_and_keeps_the_recording(display: str, key: str, tmp_path: Path,
                                                       chelsea_bgr) -> None:
    frames = [np.roll(cv2.resize(chelsea_bgr, (320, 240)), 4 * i, axis=1) for i in range(1500)]
    video = make_video(tmp_path / "long.mp4", frames, fps=30.0)
    out = tmp_path / "shown.mp4"
    env = {**os.environ, "DISPLAY": display}
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--source", str(video), "--output", str(out), "--show"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = _find_window(env, proc)
        time.sleep(1.0)  # let some frames through
        subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", key], env=env, check=True, timeout=30)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped in the window" in stdout
    assert all(line.startswith("livecam: ") for line in stderr.splitlines()), stderr  # no Qt lines
    recorded, _ = read_video(out)
    written = int(re.search(r"wrote .* \((\d+) frames?, ", stdout)[1])
    assert 0 < len(recorded) == written < len(frames)


@needs_x
@pytest.mark.slow
@pytest.mark.parametrize("users_fonts", [False, True])
def test_the_window_says_nothing_of_fonts(display: str, users_fonts: bool, tmp_path: Path, chelsea_bgr) -> None:
    """opencv-python points Qt at its own font folder, which some of its wheels lack, and Qt warns of it for each
    window: livecam gives Qt a folder that exists, the user's QT_QPA_FONTDIR when it is one (-vv says which)."""
    video = make_video(tmp_path / "short.mp4", [np.roll(chelsea_bgr, 9 * i, axis=1) for i in range(3)], fps=10.0)
    env = {**os.environ, "DISPLAY": display}
    env.pop("QT_QPA_FONTDIR", None)  # cv2's, set when this process imported it: the child's cv2 sets its own
    if users_fonts:
        env["QT_QPA_FONTDIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "livecam", "--source", str(video), "--show", "-vv"], env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "3 frames in" in result.stdout
    assert "QFontDatabase" not in result.stderr and "Qt no longer ships fonts" not in result.stderr, result.stderr
    used = re.search(r"^livecam: the window's Qt reads fonts from (.+)$", result.stderr, re.MULTILINE)
    assert used, result.stderr
    if users_fonts:
        assert used[1] == str(tmp_path)
    else:
        assert Path(used[1]).is_dir()  # cv2's own folder only when its wheel ships fonts there (5.1.0.95 does)
        assert holds_fonts(used[1]) or not used[1].endswith(os.path.join("cv2", "qt", "fonts")), used[1]


@needs_x
@pytest.mark.slow
def test_a_file_in_the_window_plays_at_its_own_rate(display: str, graph: Path, tmp_path: Path) -> None:
    """Shown and not recorded, a file is paced: 2 s at 10 fps take 2 s (the real engine is far faster than 10 fps);
    --no-pace runs it as fast as it goes."""
    video = small_clip(tmp_path / "ten_fps.mp4", 2.0, fps=10.0)
    env = {**os.environ, "DISPLAY": display}
    runs = {}
    for flags in ((), ("--no-pace",)):
        args = ["--model", str(graph), "--source", str(video), "--show", *flags]
        result = subprocess.run([sys.executable, "-m", "livecam", *args], env=env, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0, result.stderr
        found = re.search(r"livecam: 20 frames in ([0-9.]+) s, ([0-9.]+) FPS end to end", result.stdout)
        assert found, result.stdout
        runs[flags] = float(found[1])
    assert 0.9 * 2.0 <= runs[()] <= 1.1 * 2.0, runs  # the default, with --show and no --output
    assert runs[("--no-pace",)] < 0.5 * 2.0, runs


@needs_x
@pytest.mark.slow
def test_keys_are_read_while_a_paced_folder_waits_for_its_next_image(display: str, graph: Path,
                                                                     tmp_path: Path) -> None:
    """A folder of photographs at --fps 0.25 shows an image every 4 s; q pressed after the first quits at once,
    not when the second is due (the window reads its keys between frames, not only when it draws one)."""
    from tests.conftest import photo_bgr

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(("chelsea", "coffee", "astronaut")):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(photo_bgr(name), (320, 240)))
    log = tmp_path / "run.jsonl"
    env = {**os.environ, "DISPLAY": display}
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--model", str(graph), "--source", str(folder),
                             "--fps", "0.25", "--show", "--log", str(log)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = _find_window(env, proc)
        _wait(lambda: _log_lines(log), "the first image", proc)
        pressed = time.monotonic()
        subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", "q"], env=env, check=True, timeout=30)
        stdout, stderr = proc.communicate(timeout=60)
        waited = time.monotonic() - pressed
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped in the window" in stdout and re.search(r"livecam: 1 frame in ", stdout), stdout
    assert [line["frame"] for line in _log_lines(log)] == [0]
    print(f"quit {waited:.2f} s after the key (the next image was due 4 s after the first)")


def _log_lines(path: Path) -> list[dict]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def _settings(path: Path) -> list[dict]:
    return [line["settings"] for line in _log_lines(path) if "settings" in line]


def _wait(condition, what: str, proc: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"gave up waiting for {what}; livecam said: {proc.communicate()}")


@needs_x
@pytest.mark.slow
def test_keys_change_the_view_live_and_save_snapshots(display: str, tmp_path: Path, chelsea_bgr) -> None:
    """The PyTorch engine in a window: n, c, +, 3 and p change the next frames (the log says so), space pauses, s
    saves the frame as shown, the source frame and its maps."""
    frames = [np.roll(cv2.resize(chelsea_bgr, (320, 240)), 4 * i, axis=1) for i in range(1500)]
    video = make_video(tmp_path / "long.mp4", frames, fps=30.0)
    log, shots = tmp_path / "run.jsonl", tmp_path / "shots"
    env = {**os.environ, "DISPLAY": display}
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--source", str(video), "--show", "--backend", "torch",
                             "--log", str(log), "--snapshots", str(shots)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = _find_window(env, proc)

        def press(key: str) -> None:
            subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", key], env=env, check=True, timeout=30)

        first = _wait(lambda: _settings(log), "the first frame's settings", proc)[0]
        assert first == {"method": "gradcam", "rank": 0, "panels": False, "alpha": 0.5, "colormap": "jet",
                         "smooth_s": 0.0}
        expected = [first]
        for key, change in (("n", {"method": "cam"}), ("c", {"colormap": "turbo"}), ("plus", {"alpha": 0.6}),
                            ("3", {"rank": 3}), ("p", {"panels": True, "rank": 0})):
            press(key)
            expected.append({**expected[-1], **change})
            count = len(expected)
            _wait(lambda count=count: len(_settings(log)) >= count, f"the settings after {key}", proc)
            assert _settings(log) == expected

        def titled(paused: bool) -> bool:
            found = subprocess.run(["xdotool", "search", "--name", r"\(paused\)$"], env=env, capture_output=True)
            return bool(found.stdout.strip()) == paused

        press("space")  # paused: two snapshots are of one frame
        _wait(lambda: titled(True), "the title to say paused", proc)
        for n in (2, 4):  # each key waits for the last one's effect: a window busy with a frame keeps one key
            press("s")
            pngs = _wait(lambda n=n: len(list(shots.glob("*.png"))) == n and sorted(shots.glob("*.png")),
                         "snapshots", proc)
        press("space")
        _wait(lambda: titled(False), "the title to say nothing of a pause", proc)
        count = len(_log_lines(log))
        _wait(lambda: len(_log_lines(log)) > count + 5, "frames after the pause", proc)
        press("q")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped in the window" in stdout
    stems = sorted(p.name for p in pngs)
    index = int(stems[0].split("-")[1].split(".")[0])
    assert stems == [f"snapshot-{index:06d}{tail}" for tail in ("-2-frame.png", "-2.png", "-frame.png", ".png")]
    lines = {line["frame"]: line for line in _log_lines(log)}
    assert index in lines and lines[index + 1]["frame"] == index + 1  # paused between two frames, none lost
    shown, source = (cv2.imread(str(shots / f"snapshot-{index:06d}{tail}")) for tail in (".png", "-frame.png"))
    np.testing.assert_array_equal(cv2.imread(str(shots / f"snapshot-{index:06d}-2-frame.png")), source)
    decoded, _ = read_video(video)
    np.testing.assert_array_equal(source, decoded[index])  # the source frame, as decoded
    assert shown.shape == source.shape and np.abs(shown.astype(int) - source.astype(int)).mean() > 5  # annotated
    with np.load(shots / f"snapshot-{index:06d}.npz") as maps:
        assert maps["maps"].shape[0] == 3 and int(maps["frame"]) == index  # the three panels' maps
        assert list(maps["map_classes"]) == list(maps["classes"][:3])
        assert list(maps["classes"]) == [label["index"] for label in lines[index]["labels"]]
