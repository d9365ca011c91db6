"""The README works as printed: its example with onnxruntime, NumPy and OpenCV alone, and its command lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import cv2

from tests.conftest import CAT_CLASSES

README = Path(__file__).parents[1] / "README.md"


def test_the_onnxruntime_example_explains_a_photograph(lite0, chelsea_bgr, tmp_path: Path) -> None:
    from livecam.export import export_explainer

    text = README.read_text()
    block = re.search(r"<!-- example: onnxruntime alone -->\n```python\n(.*?)```", text, re.S)
    assert block, "the README lost its example"
    export_explainer(lite0, tmp_path / "lite0.onnx")
    cv2.imwrite(str(tmp_path / "cat.jpg"), chelsea_bgr)
    no_livecam = "import sys\nfor name in ('torch', 'livecam'):\n    sys.modules[name] = None\n"
    proc = subprocess.run([sys.executable, "-c", no_livecam + block.group(1)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, score = proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert name in CAT_CLASSES and 0.3 < float(score) <= 1.0, proc.stdout
    picture = cv2.imread(str(tmp_path / "cat-gradcam.jpg"))
    assert picture is not None and picture.shape == chelsea_bgr.shape


def _readme_commands() -> list[list[str]]:
    """Every ``livecam ...`` line of the README's shell blocks, as arguments (comments and continuations off)."""
    import shlex

    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "livecam":
                commands.append(words[1:])
    return commands


def test_every_command_line_of_the_readme_parses() -> None:
    """Its options exist, with values of the right kind: a renamed option or a changed size breaks here."""
    from livecam.cli import main

    commands = _readme_commands()
    assert len(commands) > 10, commands  # the quick start, annotate, export, bench, ...
    for args in commands:
        if args and args[0] in ("-h", "--help", "--version"):
            continue
        name = args[0] if args and args[0] in main.commands else "run"
        rest = args[1:] if args and args[0] in main.commands else args
        try:
            main.commands[name].make_context(name, list(rest))
        except click.exceptions.Exit:  # --help
            pass
        except click.UsageError as exc:
            raise AssertionError(f"livecam {' '.join(args)}: {exc.format_message()}") from None
