"""One rule for every file livecam writes: never an input, never a user's file without --overwrite, checked first.

The CLI walk reads the output options from the commands themselves, so a new option or command cannot skip the
rule: every path-typed option is declared an input or an output, and every output is tried here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import cv2
import pytest
from click.testing import CliRunner

from livecam.cli import InputPath, OutputPath, flag, main
from livecam.errors import LivecamError, RunError
from livecam.outputs import Output, check_outputs, replace_atomically, write_text, write_texts
from tests.conftest import make_video, moving_photos


@pytest.fixture()
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder that takes no new file, even for root: a read-only mount where one can be made, else /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    yield folder if mounted else Path("/sys")
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real video the user has: five frames of photographs."""
    return make_video(tmp_path_factory.mktemp("victim") / "victim.mp4", moving_photos(5, (160, 120)), fps=5.0)


# --- the rule itself ---------------------------------------------------------------------------------------------

def test_an_input_is_refused_even_with_overwrite(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(victim)
    hard = tmp_path / "hard.mp4"
    os.link(victim, hard)
    for path in (victim, link, hard, tmp_path / ".." / tmp_path.name / "hard.mp4"):
        with pytest.raises(LivecamError, match="is an input of this command"):
            check_outputs([Output("json", path)], [victim], overwrite=True)


def test_existing_files_are_kept_unless_overwrite(tmp_path: Path) -> None:
    mine = tmp_path / "notes.jsonl"
    mine.write_text("mine\n")
    with pytest.raises(LivecamError, match="already exists; pass overwrite"):
        check_outputs([Output("markdown", mine)])
    check_outputs([Output("markdown", mine)], overwrite=True)
    assert mine.read_text() == "mine\n"


def test_the_messages_name_settings_that_the_command_line_shows_as_flags(tmp_path: Path) -> None:
    mine = tmp_path / "notes.md"
    mine.write_text("mine\n")
    for given in ("markdown", "--markdown"):  # a setting, or a flag as sinks pass it: the same message
        with pytest.raises(LivecamError) as caught:
            check_outputs([Output(given, mine)])
        assert str(caught.value).endswith("pass overwrite to replace it, or choose another markdown")
        assert caught.value.render(flag).endswith("pass --overwrite to replace it, or choose another --markdown")
    with pytest.raises(LivecamError) as caught:
        check_outputs([Output("save_maps", tmp_path)], [tmp_path])
    assert caught.value.render(flag).startswith(f"--save-maps {tmp_path} is an input of this command")


def test_write_texts_writes_the_reports_that_were_asked_for(tmp_path: Path) -> None:
    write_texts((tmp_path / "a.json", "{}"), (None, "not asked for"), (tmp_path / "b.md", "| x |"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md"]
    assert (tmp_path / "b.md").read_text() == "| x |"


def test_two_outputs_of_one_command_may_not_be_one_path(tmp_path: Path) -> None:
    with pytest.raises(LivecamError, match="save_maps .* is also the output"):
        check_outputs([Output("output", tmp_path / "same.mp4"), Output("save_maps", tmp_path / "same.mp4", True)])
    with pytest.raises(LivecamError, match="is also the log"):
        check_outputs([Output("log", tmp_path / "X"), Output("save_maps", tmp_path / "." / "X", True)])
    assert not (tmp_path / "X").exists()


def test_folders_files_suffixes_and_missing_parents(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LivecamError, match="is a file; give a folder"):
        check_outputs([Output("save_maps", tmp_path / "file", folder=True)])
    with pytest.raises(LivecamError, match="is a folder; give json a file name"):
        check_outputs([Output("json", tmp_path)])
    with pytest.raises(LivecamError, match="must name a file ending in .onnx"):
        check_outputs([Output("output", tmp_path / "model.pt", suffixes=(".onnx",))])
    with pytest.raises(LivecamError, match="the folder .*missing does not exist"):
        check_outputs([Output("json", tmp_path / "missing" / "r.json")])
    check_outputs([Output("save_maps", tmp_path / "new" / "deeper", folder=True)])  # made later, when needed
    assert not (tmp_path / "new").exists()


def test_a_folder_that_takes_no_file_is_refused(read_only_dir: Path) -> None:
    for output in (Output("json", read_only_dir / "r.json"), Output("save_maps", read_only_dir / "maps", True)):
        with pytest.raises(LivecamError, match="does not take new files"):
            check_outputs([output])


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    with pytest.raises(ZeroDivisionError), replace_atomically(path) as partial:
        partial.write_text("half")
        raise ZeroDivisionError
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    write_text(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_write_that_fails_at_the_end_is_a_run_error(read_only_dir: Path) -> None:
    with pytest.raises(RunError, match="could not write"):
        write_text(read_only_dir / "report.json", "{}")


# --- every output option of every command ------------------------------------------------------------------------

# A valid command line for each command that writes files, reading `victim` (an input) and nothing else slow.
BASE: dict[str, Callable[[Path], list[str]]] = {
    "run": lambda v: ["run", "--source", str(v), "--no-show"],
    "annotate": lambda v: ["annotate", str(v)],
    "export": lambda v: ["export", "--weights", str(v)],
    "bench": lambda v: ["bench", "--source", str(v), "--frames", "10", "--startup", "0", "--no-peer"],
    "evaluate": lambda v: ["evaluate", "--source", str(v), "--frames", "1"],
}


def _output_options() -> list[tuple[str, str, OutputPath]]:
    found = []
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param.type, OutputPath):
                found.append((name, max(param.opts, key=len), param.type))
    return found


def _has_overwrite(command: str) -> bool:
    return any(p.name == "overwrite" for p in main.commands[command].params)


def test_every_path_option_is_an_input_or_an_output() -> None:
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param.type, click.Path):
                assert isinstance(param.type, (InputPath, OutputPath)), f"livecam {name} {param.opts}"
            if isinstance(param.type, OutputPath):
                assert name in BASE, f"add a command line for livecam {name} to BASE"
    options = {(c, o) for c, o, _ in _output_options()}
    assert {("run", "--output"), ("run", "--log"), ("run", "--save-maps"), ("bench", "--json"),
            ("bench", "--markdown"), ("bench", "--plot"), ("evaluate", "--json"), ("export", "--output"),
            ("annotate", "--out-dir")} <= options


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(("command", "option", "kind"), _output_options())
def test_no_output_option_can_destroy_an_input_or_a_users_file(command: str, option: str, kind: OutputPath,
                                                                victim: Path, tmp_path: Path,
                                                                read_only_dir: Path) -> None:
    folder = kind.folder
    name = "folder" if folder else "mine" + (kind.suffixes[0] if kind.suffixes else ".txt")
    before = victim.read_bytes()
    base = BASE[command](victim)
    overwrite = ["--overwrite"] if _has_overwrite(command) else []
    # 1. the input itself, even with --overwrite
    code, err = _invoke([*base, option, str(victim), *overwrite])
    assert code == 2 and err.startswith("livecam: error:") and err.count("\n") == 1, err
    assert victim.read_bytes() == before
    # 2. a file the user has, without --overwrite (for a folder option: a file where the folder would go)
    mine = tmp_path / ("mine.txt" if folder else name)
    mine.write_bytes(b"the user's")
    code, err = _invoke([*base, option, str(mine)])
    assert code == 2 and err.count("\n") == 1, err
    assert ("is a file; give a folder" if folder else "already exists; pass --overwrite") in err, err
    assert mine.read_bytes() == b"the user's"
    # 3. a folder that takes no file, and 4. one that does not exist: refused before any work, nothing made
    # (a folder output is created with its parents: only a file's folder must exist)
    for where in (read_only_dir,) if folder else (read_only_dir, tmp_path / "missing" / "deeper"):
        target = where / name
        code, err = _invoke([*base, option, str(target), *overwrite])
        assert code == 2 and err.count("\n") == 1, err
        assert not target.exists()
    assert victim.read_bytes() == before and cv2.VideoCapture(str(victim)).isOpened()
