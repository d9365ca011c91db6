"""The one exception type that reaches users.

Library code raises :class:`LivecamError` with a message that says what is
wrong and what to do about it. The CLI (and only the CLI) turns it into one
line on stderr and exit code 2 (1 for a :class:`RunError`).
"""

from __future__ import annotations


class LivecamError(Exception):
    """A problem with the user's input: a missing file, an unknown name, ...

    The message is shown to the user as it is, so it must be one line that
    names the problem and the fix.
    """


class GraphError(LivecamError):
    """An ONNX file that cannot be read, or whose livecam metadata does not match its graph (a damaged file).

    A cached graph that raises it is exported again; a user's file is reported in one line.
    """


class RunError(LivecamError):
    """A run that could not go on (the disk filled up, the model failed on a frame): exit code 1, not 2.

    What was processed before it is kept: the recording plays, the log holds its lines.
    """

    exit_code = 1


def torch_installed() -> bool:
    """Is PyTorch importable here? (Without importing it: that takes a second or two.)"""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules has no spec
        return False


def require_torch(what: str) -> None:
    """Refuse, in one line, what needs PyTorch in an install without it (the runtime alone)."""
    if not torch_installed():
        raise LivecamError(f"{what} needs PyTorch, which this install lacks: pip install 'livecam[torch]' (the "
                           "runtime alone runs graphs made by 'livecam export': --model FILE.onnx)")
