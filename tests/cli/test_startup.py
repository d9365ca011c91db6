"""The command line at its edges: Ctrl-C at any moment of the start, typos, and help that says what the tool is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from livecam.cli import main, shell


def test_ctrl_c_inside_an_import_is_an_interruption(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt raised while an extension module initializes comes out as ImportError (pybind11 does
    this to onnxruntime's): after a Ctrl-C, that is 'interrupted' and exit code 130, not an internal error."""
    import livecam.engines.launch

    def interrupted_import(*_args: object, **_kwargs: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None

    monkeypatch.setattr(livecam.engines.launch, "open_engine", interrupted_import)
    monkeypatch.setattr(shell, "_INTERRUPTS", [])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    result = CliRunner().invoke(main, ["--source", "demo", "--no-show"])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "livecam: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_other_errors_stay_internal_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import livecam.engines.launch

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ImportError("initialization failed")

    monkeypatch.setattr(livecam.engines.launch, "open_engine", broken)
    monkeypatch.setattr(shell, "_INTERRUPTS", [])
    monkeypatch.delenv("LIVECAM_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["--source", "demo", "--no-show"])
    assert result.exit_code == 1 and "internal error: ImportError" in result.stderr


def _mapped(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the imports")
@pytest.mark.parametrize("library", ["cv2", "onnxruntime_pybind11_state", "onnxruntime_pybind11_state",
                                     "onnxruntime_pybind11_state"])
def test_ctrl_c_during_the_start(library: str, lite0_graph: Path) -> None:
    """SIGINT the moment a library's shared object is mapped: while OpenCV or ONNX Runtime is being imported."""
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--source", "demo", "--no-show", "--model",
                             str(lite0_graph)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _mapped(proc.pid, library) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "livecam: interrupted", stderr


@pytest.mark.parametrize(("args", "fragment"), [
    (["expor"], "no command 'expor' (did you mean export?)"),
    (["anotate", "x"], "no command 'anotate' (did you mean annotate?)"),
    (["video.mp4"], "no command 'video.mp4'"),
])
def test_a_typo_of_a_command_says_so(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert "Missing option" not in lines[0]


def test_ctrl_c_while_a_named_pipe_waits_for_its_writer(tmp_path: Path) -> None:
    """Opening a FIFO blocks in FFmpeg until something writes to it; Ctrl-C must still end the wait at once."""
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--source", str(fifo), "--no-show", "--output",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # said before the open blocks
        assert "is a named pipe: waiting for something to write to it" in line, line
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, rest
    assert rest.strip().splitlines() == ["livecam: interrupted"], rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.fifo"]
