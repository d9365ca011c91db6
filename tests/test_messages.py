"""The library never spells a command-line flag in what it tells the user.

Errors and log lines name a setting with :func:`livecam.errors.option` (``option('overwrite')``),
which Python shows as the parameter's name and the command line as its flag (``--overwrite``):
the library is used from Python as much as from the shell. Only :mod:`livecam.cli` writes flags.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from livecam.errors import LivecamError, option

PACKAGE = Path(__file__).parents[1] / "livecam"
FLAG = re.compile(r"--[a-z]")
# another program's command line, quoted in a message ('ray start --head'), is not a livecam flag
OTHER_PROGRAM = re.compile(r"'(ray|pip|ffmpeg|nvidia-smi) [^']*'")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def _library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)


def _texts(node: ast.AST) -> list[str]:
    """The literal text in ``node``: strings, and the constant parts of f-strings."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _messages(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of each string in a ``raise SomethingError(...)`` or a ``log.warning(...)``-like call."""
    found = []
    for node in ast.walk(tree):
        call = None
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = ast.unparse(node.exc.func)
            if name.endswith(("Error", "Exception")):
                call = node.exc
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS
              and ast.unparse(node.func.value).split(".")[-1] in ("log", "logger", "logging", "_log", "LOG")):
            call = node
        if call is not None:
            found.extend((call.lineno, text) for arg in call.args for text in _texts(arg))
    return found


def _flags_in(path: Path) -> list[str]:
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: {text.strip()[:80]!r}"
            for line, text in _messages(ast.parse(path.read_text())) if FLAG.search(OTHER_PROGRAM.sub("", text))]


@pytest.mark.parametrize("path", _library_modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_library_messages_name_settings_not_flags(path: Path) -> None:
    offenders = _flags_in(path)
    assert not offenders, "write option('name') instead of --name:\n" + "\n".join(offenders)


def test_the_scan_finds_flags_where_they_are() -> None:
    tree = ast.parse('raise LivecamError(f"pass --overwrite to replace {path}")\n'
                     'log.warning("no --output given; %s", x)\n'
                     'raise LivecamError(f"pass {option(\'overwrite\')} to replace it")\n'
                     'print("--help is the CLI\'s")\n')
    assert [line for line, text in _messages(tree) if FLAG.search(text)] == [1, 2]


def test_a_named_setting_reads_as_a_name_from_python_and_as_a_flag_from_the_shell() -> None:
    error = LivecamError(f"pass {option('out_dir')} and {option('overwrite')}")
    assert str(error) == "pass out_dir and overwrite"
    from livecam.cli import flag

    assert error.render(flag) == "pass --out-dir and --overwrite"
