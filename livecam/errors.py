"""Every exception livecam raises, in one tree, so a caller can catch what it means to handle.

Library code raises these with a message that says what is wrong and what to do
about it. The CLI (and only the CLI) turns one into a line on stderr and the
class's ``exit_code``::

    LivecamError          bad input: a missing file, an unknown name, options that do not combine (exit 2)
    +-- GraphError        an ONNX file that cannot be read, or whose livecam metadata does not match its graph
    +-- RunError          a run that could not go on: the disk filled up, a chart could not be written (exit 1)
        +-- ModelError    the engine failed on a frame and the run stopped; carries the run's report

Anything else that escapes the library (an ``OSError`` from a driver, a bug) is
not livecam's word on the input, and the CLI reports it as an internal error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livecam.types import RunReport

_OPTION = re.compile("\x02([a-z][a-z0-9_]*)\x03")


def option(name: str) -> str:
    """Name one of the caller's settings inside a message, in the library's words.

    ``LivecamError(f"pass {option('overwrite')} to replace it")`` reads "pass overwrite to
    replace it" from Python (the parameter's name) and "pass --overwrite to replace it" from
    the command line, whose shell renders each named setting as its flag
    (:meth:`LivecamError.render`). The library itself never spells a flag.
    """
    return f"\x02{name}\x03"


class LivecamError(Exception):
    """A problem with the user's input: a missing file, an unknown name, ...

    The message is shown to the user as it is, so it must be one line that
    names the problem and the fix. Settings named with :func:`option` read as the
    library's parameter names; the CLI shows its flags instead.
    """

    exit_code = 2

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each setting named by ``name`` (the CLI passes one that gives the flag)."""
        return _OPTION.sub(lambda match: name(match.group(1)), super().__str__())

    def __str__(self) -> str:
        return self.render(lambda setting: setting)


class GraphError(LivecamError):
    """An ONNX file that cannot be read, or whose livecam metadata does not match its graph (a damaged file).

    A cached graph that raises it is exported again; a user's file is reported in one line.
    """


class RunError(LivecamError):
    """A run that could not go on (the disk filled up, the model failed on a frame): exit code 1, not 2.

    What was processed before it is kept: the recording plays, the log holds its lines.
    """

    exit_code = 1


class ModelError(RunError):
    """The engine failed on a frame and ``on_error`` was ``"stop"``: the message names the frames.

    ``report`` says what the run did before (every frame before the failure is written).
    """

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


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
                           "runtime alone runs graphs made by 'livecam export': "
                           f"{option('model')} FILE.onnx)")
