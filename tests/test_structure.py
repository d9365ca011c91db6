"""The layout's promises: a torch-free core, a lazy package, no import cycles, one list of choices."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import livecam
from livecam import choices

PACKAGE = Path(livecam.__file__).parent
# the folders (and one module) that may import PyTorch; everything else is the torch-free core
TORCH_HOMES = ("livecam.engines.pytorch", "livecam.cams", "livecam.zoo", "livecam.export", "livecam.bench.torch_target")
HEAVY = ("torch", "torchvision", "onnxscript")
# the shell: only it may print or end the process
SHELL = ("livecam.cli", "livecam.__main__")


def _in(name: str, homes: tuple[str, ...]) -> bool:
    return any(name == home or name.startswith(home + ".") for home in homes)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _core() -> list[str]:
    return [name for name in _modules() if not _in(name, TORCH_HOMES)]


def test_the_core_is_every_module_outside_the_torch_folders() -> None:
    core = _core()
    for name in ("livecam", "livecam.cli", "livecam.sources", "livecam.sinks", "livecam.engines.launch",
                 "livecam.engines.runtime.engine", "livecam.annotate", "livecam.bench", "livecam.pipeline"):
        assert name in core
    for home in TORCH_HOMES:
        assert home in _modules(), f"{home} is named as a PyTorch folder but does not exist"


def test_the_core_imports_no_torch() -> None:
    code = ("import importlib, sys\n"
            f"for name in {[m for m in _core() if m != 'livecam.__main__']!r}:\n"  # __main__ runs the CLI
            "    importlib.import_module(name)\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Imports that run when the module loads (not inside functions; ``if TYPE_CHECKING:`` blocks excluded)."""
    found: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.Try):
            found.extend(n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def _names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.module == "livecam":
        return [f"livecam.{a.name}" for a in node.names]
    return [node.module or ""]


def test_no_core_module_imports_torch_even_inside_a_function() -> None:
    """The import above proves the modules load without torch; this reads every line, called or not."""
    offenders = []
    for name in _core():
        tree = ast.parse(_modules()[name].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for imported in _names(node):
                    if imported.split(".")[0] in HEAVY:
                        offenders.append(f"{name}:{node.lineno} imports {imported}")
        # a PyTorch folder may be imported where it is used, never when the core module loads
        for node in _top_level_imports(tree):
            for imported in _names(node):
                if _in(imported, TORCH_HOMES):
                    offenders.append(f"{name}:{node.lineno} imports {imported} when it loads")
    assert not offenders, "\n".join(offenders)


def test_only_the_shell_prints_or_exits() -> None:
    """The library reports through exceptions, logging and return values; the CLI decides what the user sees."""
    banned_calls = {"print", "exit", "quit", "sys.exit", "os._exit", "click.echo", "click.secho",
                    "sys.stdout.write", "sys.stderr.write"}
    offenders = []
    for name, path in _modules().items():
        if _in(name, SHELL):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                if called in banned_calls:
                    offenders.append(f"{name}:{node.lineno} calls {called}")
            elif isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
                offenders.append(f"{name}:{node.lineno} raises SystemExit")
    assert not offenders, "\n".join(offenders)


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
    from livecam.sinks.encode import DEFAULT_CODEC

    assert set(choices.RECORDING_SUFFIXES) == set(DEFAULT_CODEC)
