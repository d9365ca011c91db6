"""The README's Layout section is the package's tree: every module it names exists, every folder is named."""

from __future__ import annotations

import re
from pathlib import Path

import livecam

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(livecam.__file__).resolve().parent
NAME = re.compile(r"^[\w.]+(/|\.py|\.json|\.html|\.typed)$")


def layout_block() -> list[str]:
    """The lines of the code block under the README's '## Layout' heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].splitlines()[1:]


def named_paths(lines: list[str]) -> set[Path]:
    """Paths the tree names, from its indentation (two spaces a level); description lines are skipped."""
    found: set[Path] = set()
    parents: list[tuple[int, str]] = []  # (indent, folder) of the folders we are in
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        first = line.split()[0].rstrip(",")
        if not NAME.match(first) or not (first.endswith("/") or "." in first):
            continue  # a description that runs onto the next line
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = Path(*[folder for _, folder in parents], first.rstrip("/"))
        found.add(path)
        if first.endswith("/"):
            parents.append((indent, first.rstrip("/")))
    return found


def test_every_module_named_in_the_layout_exists() -> None:
    named = {p for p in named_paths(layout_block()) if p.parts[0] == "livecam"}
    assert Path("livecam") in named
    missing = sorted(str(p) for p in named if not (ROOT / p).exists())
    assert not missing, f"the README's Layout names what does not exist: {missing}"


def test_every_package_folder_and_module_is_in_the_layout() -> None:
    named = named_paths(layout_block())
    folders = {p.parent.relative_to(ROOT) for p in PACKAGE.rglob("__init__.py")}
    assert not sorted(str(f) for f in folders - named), "package folders missing from the README's Layout"
    modules = {p.relative_to(ROOT) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert not sorted(str(m) for m in modules - named), "modules missing from the README's Layout"


def test_the_parser_reads_nesting_and_skips_descriptions() -> None:
    lines = ["livecam/", "  cli/            the shell", "    run.py        the run command,",
             "                  wrapped", "  errors.py       exceptions", "tests/            pytest"]
    assert named_paths(lines) == {Path("livecam"), Path("livecam/cli"), Path("livecam/cli/run.py"),
                                  Path("livecam/errors.py"), Path("tests")}


def test_every_file_the_readme_cites_exists() -> None:
    """Paths in the prose too (`tests/cams/test_sanity.py asserts ...`): a move must take them along."""
    cited = set(re.findall(r"\b((?:livecam|tests|benchmarks|scripts)/[\w/.-]*\w\.(?:py|json|html|md|sh))\b",
                           (ROOT / "README.md").read_text()))
    assert cited, "the README cites no file: the pattern is wrong"
    missing = sorted(path for path in cited if not (ROOT / path).exists())
    assert not missing, f"the README cites files that do not exist: {missing}"
