"""The files livecam writes, and the one rule they all follow.

Every command checks every file or folder it will write before it does any
work (:func:`check_outputs`), whatever the setting that names it (``output``, ``log``,
``save_maps``, ``json``, ``markdown``, ``plot``, ``out_dir``):

- a path that is one of the command's inputs (the source video, the model, the
  weights, a report to compare) is refused, even with ``--overwrite``: writing
  it would destroy what is being read;
- two outputs of one command that are the same path are refused;
- an existing file is kept unless ``overwrite``;
- the folder must exist (a folder output's nearest existing parent) and take a
  new file, which is tried for real: a read-only disk or a folder the user
  cannot write in is refused up front, not after a whole run.

What is written at the end of a run (a report, a table, a chart) goes to a
hidden partial file beside its name and is moved into place
(:func:`replace_atomically`, :func:`write_texts`), so a failed write never leaves
half a file where the user's file was.

The messages name each output by its setting (:func:`livecam.errors.option`): the
command line shows the flag (``--json``), Python the name (``json``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from livecam.errors import LivecamError, RunError, option


@dataclass(frozen=True)
class Output:
    """A path a command will write: the setting that names it, a file or a folder, the suffixes it may take."""

    option: str  # the setting, for the messages: "json", "save_maps" (a flag, "--save-maps", reads the same)
    path: Path
    folder: bool = False
    suffixes: tuple[str, ...] = ()  # lower case, with the dot; empty: any

    @property
    def named(self) -> str:
        """The setting as a message names it (:func:`livecam.errors.option`)."""
        return option(self.option.removeprefix("--").replace("-", "_"))


def partial_path(path: Path) -> Path:
    """The hidden file a write to ``path`` goes to until it is complete (the suffix kept for format detection)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _identity(path: Path) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def same_file(a: Path, b: Path) -> bool:
    """Do ``a`` and ``b`` name one file (the same path, a link to it, or a hard link)?"""
    if _identity(a) == _identity(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _writable(folder: Path) -> str | None:
    """None if a new file can be made in ``folder`` (tried for real); else why not."""
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".livecam-probe-")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def _existing_parent(path: Path) -> Path:
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_output(output: Output, inputs: Iterable[Path] = (), overwrite: bool = False) -> Path:
    """Refuse ``output`` if writing it would destroy an input or a file the user has, or cannot succeed."""
    path, name = output.path.expanduser(), output.named
    for source in inputs:
        if same_file(path, source):
            raise LivecamError(f"{name} {output.path} is an input of this command ({source}); writing it would "
                               "destroy it, so choose another name")
    if output.folder:
        if path.exists() and not path.is_dir():
            raise LivecamError(f"{name} {output.path} is a file; give a folder (it is created if missing)")
        parent = path if path.is_dir() else _existing_parent(path)
        if not parent.is_dir():
            raise LivecamError(f"cannot create {name} {output.path}: {parent} is not a folder")
    else:
        if path.is_dir():
            example = path / ("out" + (output.suffixes[0] if output.suffixes else ""))
            raise LivecamError(f"{output.path} is a folder; give {name} a file name such as {example}")
        if output.suffixes and path.suffix.lower() not in output.suffixes:
            raise LivecamError(f"cannot write {output.path}: {name} must name a file ending in "
                               f"{', '.join(output.suffixes)}")
        parent = path.parent
        if not parent.is_dir():
            raise LivecamError(f"cannot write {output.path}: the folder {parent} does not exist; create it or choose "
                               f"another {name}")
        if path.exists() and not overwrite:
            raise LivecamError(f"{output.path} already exists; pass {option('overwrite')} to replace it, or choose "
                               f"another {name}")
    why = _writable(parent)
    if why is not None:
        raise LivecamError(f"cannot write {output.path}: the folder {parent} does not take new files ({why}); "
                           f"choose another {name}")
    return path


def check_outputs(outputs: Iterable[Output], inputs: Iterable[Path] = (), overwrite: bool = False) -> None:
    """:func:`check_output` for each of a command's outputs, and no two of them the same path."""
    outputs, inputs = list(outputs), list(inputs)
    seen: dict[str, Output] = {}
    for output in outputs:
        key = _identity(output.path)
        if key in seen:
            first = seen[key]
            raise LivecamError(f"{output.named} {output.path} is also the {first.named} {first.path}; give each "
                               "its own name")
        seen[key] = output
    for output in outputs:
        check_output(output, inputs, overwrite)


@contextlib.contextmanager
def replace_atomically(path: Path) -> Iterator[Path]:
    """Write to the partial path this yields; on success it replaces ``path``, on failure it is removed."""
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all; a full disk is a one-line error."""
    try:
        with replace_atomically(path) as partial:
            partial.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RunError(f"could not write {path} ({exc.strerror or exc}); it is left as it was") from None


def write_texts(*outputs: tuple[Path | None, str]) -> None:
    """:func:`write_text` for each ``(path, text)`` of a command's reports whose path was given (not None).

    The paths were checked before the work (:func:`check_outputs`); what is left is the write itself.
    """
    for path, text in outputs:
        if path is not None:
            write_text(path, text)
