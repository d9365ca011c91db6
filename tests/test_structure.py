"""The layout's promises: a torch-free core, a lazy package, no import cycles, one list of choices."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import livecam
from livecam import choices

PACKAGE = Path(livecam.__file__).parent
TORCH_FREE = ["livecam", "livecam.cli", "livecam.choices", "livecam.demo", "livecam.errors", "livecam.paths",
              "livecam.pipeline", "livecam.preprocess", "livecam.render", "livecam.sinks", "livecam.sources",
              "livecam.timing", "livecam.types", "livecam.serve", "livecam.encode", "livecam.records",
              "livecam.annotate", "livecam.annotate_ray", "livecam.outputs",
              "livecam.text"]


def test_the_core_imports_no_torch() -> None:
    code = ("import importlib, sys\n"
            f"for name in {TORCH_FREE!r}:\n"
            "    importlib.import_module(name)\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'onnxscript') if m in sys.modules)\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_package_loads_its_names_lazily() -> None:
    assert set(livecam.__all__) == {"__version__", *livecam._LAZY}
    for name in livecam._LAZY:
        assert getattr(livecam, name) is not None
    try:
        livecam.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """livecam modules that ``path`` imports anywhere: at the top, inside functions, for type checkers."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("livecam"):
            # ``from livecam import choices`` imports the module livecam.choices (and the lazy package root,
            # which imports nothing); ``from livecam.zoo import load_model`` imports livecam.zoo
            found.update(f"{node.module}.{a.name}" for a in node.names)
            if node.module != "livecam":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("livecam"))
    return found


def test_no_import_cycles() -> None:
    """Also through imports inside functions, which hide a cycle from Python but not from the design."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(node):], node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        visit(name, [])


def test_choices_match_the_registries() -> None:
    from livecam.cams import METHODS
    from livecam.render import COLORMAPS

    assert tuple(METHODS) == choices.METHODS
    assert tuple(COLORMAPS) == choices.COLORMAPS
    assert set(choices.EXPORT_METHODS) <= set(choices.METHODS)
    from livecam.encode import DEFAULT_CODEC

    assert set(choices.RECORDING_SUFFIXES) == set(DEFAULT_CODEC)
