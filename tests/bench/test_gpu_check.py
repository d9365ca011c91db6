"""The GPU check (benchmarks/gpu_check.sh) must work the first time: a GPU machine is lent rarely, for minutes.

Its dry run (GPU_CHECK_DRY_RUN=1) builds a Python 3.12 environment of the device image's packages, which costs
gigabytes and minutes, so it is run by hand (benchmarks/README.md). These tests are what CI can check in seconds:
the scripts parse; every livecam command in the check parses with livecam's own CLI; the pytest steps select
every test that needs CUDA; what comes back fits the device tool; and the carried wheels are exactly what the
device image lacks, for what livecam and the check's tests import.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from _pytest.mark.expression import Expression
from packaging.markers import default_environment
from packaging.requirements import Requirement

from livecam.bench import parse_size
from livecam.cli import main
from livecam.engines.runtime.session import parse_device

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
CHECK = BENCHMARKS / "gpu_check.sh"
WHEELS = BENCHMARKS / "gpu_wheels.sh"
# Imported somewhere in livecam, but by no step of the check: the distribution and why it need not travel.
NOT_ON_THE_DEVICE = {"ray": "livecam annotate --ray only",
                     # tests/conftest.py's chromium_page imports it when a browser test runs; those skip there
                     "playwright": "the browser tests, which need Chromium (the device has none)"}
# The device's Python and platform, for the carried wheels' environment markers.
DEVICE = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}


# Two builds of one module: the image has the second of each (its onnxruntime is the CPU build).
BUILDS = {"opencv-python": "opencv-python-headless", "onnxruntime-gpu": "onnxruntime"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(path: Path) -> list[str]:
    """The first word of each line, less any version pin, comments and blank lines left out."""
    lines = (line.split("#")[0].split() for line in path.read_text().splitlines())
    return [canonical(re.split(r"[=<>!~;\[]", words[0])[0]) for words in lines if words]


IMAGE = set(names(BENCHMARKS / "gpu_image_packages.txt"))
CARRIED = names(BENCHMARKS / "gpu_wheels.txt")


@functools.cache
def steps() -> list[tuple[str, str, list[str]]]:
    """(name, kind, argv) of each step, as the script lists them (GPU_CHECK_LIST=1), and the files it writes."""
    out = subprocess.run(["bash", str(CHECK)], env={**os.environ, "GPU_CHECK_LIST": "1"}, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    found = []
    for line in out.splitlines():
        if line.startswith("step "):
            _, name, kind, _limit, *argv = shlex.split(line)
            found.append((name, kind, argv))
        elif line.startswith("out "):
            found.append(("out", "", ["$OUT/" + line.split()[1]]))
    return found


def livecam_args(argv: list[str]) -> list[str] | None:
    """A step's livecam arguments, the command first (``run`` where the step leaves it implied, as users do)."""
    if argv[:3] != ["python3", "-m", "livecam"]:
        return None
    args = argv[3:]
    return args if args and args[0] in main.commands else ["run", *args]


def parse_livecam(args: list[str]) -> click.Context:
    command = main.commands[args[0]]
    return command.make_context(args[0], list(args[1:]))


def test_both_scripts_parse_and_the_check_goes_on_past_a_failing_step() -> None:
    for script in (CHECK, WHEELS):
        out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    text = CHECK.read_text()
    assert re.search(r"^set -uo pipefail$", text, re.M)
    assert not re.search(r"^\s*set -[a-z]*e", text, re.M), "set -e would stop the check at its first failing step"
    kinds = {kind for name, kind, _ in steps() if name != "out"}
    assert kinds == {"plain", "cuda", "ortgpu"}


def test_every_livecam_command_of_the_check_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the compare step's reports are paths from the repository's root
    commands = [(name, livecam_args(argv)) for name, _, argv in steps() if livecam_args(argv)]
    assert {args[0] for _, args in commands} == {"bench", "export", "run"}
    assert len(commands) == 12
    for name, args in commands:
        ctx = parse_livecam(args)  # unknown options, bad choices and ranges raise click's errors here
        params = ctx.params
        if args[0] == "bench" and not params["compare"]:
            assert parse_size(params["size"]) == (1920, 1080), name
            assert parse_device(params["device"]).kind in ("cuda", "tensorrt"), name
            assert params["json_path"].parent.as_posix() == "$OUT", name
            assert params["model_name"].endswith(".onnx") or params["model_name"] in main_model_names(), name
            assert params["label"], name
        if args[0] == "run":  # issue 19's runs: on the GPU, no window (the device has no display), recorded
            assert parse_device(params["device"]).kind == "cuda" and params["show"] is False, name
            assert params["output"].as_posix().startswith("$WORK/"), name
        if params.get("compare") and args[0] == "bench":
            assert params["reports"] and all(Path(p).is_file() for p in params["reports"])
            assert params["md_path"].as_posix() == "$WORK/compare-gpu.md"


def main_model_names() -> list[str]:
    from livecam.zoo import model_names

    return model_names()


def test_a_wrong_option_would_be_caught() -> None:
    """The parse above is a real check: the same bench command with an option that does not exist fails."""
    bench = next(livecam_args(argv) for _, _, argv in steps() if (livecam_args(argv) or [""])[0] == "bench")
    with pytest.raises(click.NoSuchOption):
        parse_livecam([*bench, "--sizes", "1920x1080"])
    with pytest.raises(click.BadParameter):
        parse_livecam([*bench, "--precision", "fp8"])


def test_what_comes_back_fits_the_device_tool() -> None:
    """At most 8 files from $OUT, named in letters, digits, '.', '_' and '-', each written once."""
    written = [arg for _, _, argv in steps() for arg in argv if arg.startswith("$OUT/")]
    assert len(written) == len(set(written)) and len(written) <= 8, written
    for path in written:
        assert re.fullmatch(r"\$OUT/[A-Za-z0-9._-]+", path), path


def cuda_tests() -> dict[tuple[str, str], set[str]]:
    """Every test function under tests/ that skips without CUDA: (file, name) -> the names ``-k`` matches it by
    (as pytest's: the function's, its file's and its markers')."""
    found = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        where = path.relative_to(ROOT)
        tree = ast.parse(path.read_text())
        marks = {t.id for node in tree.body if isinstance(node, ast.Assign) and "cuda" in ast.unparse(node.value)
                 and "skipif" in ast.unparse(node.value) for t in node.targets if isinstance(t, ast.Name)}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                decorators = [ast.unparse(d) for d in node.decorator_list]
                if any(d in marks or ("skipif" in d and "cuda" in d.lower()) for d in decorators):
                    markers = {m for d in decorators for m in re.findall(r"mark\.(\w+)", d)}
                    found[(where.as_posix(), node.name)] = {node.name, *where.parts, *markers}
    return found


def test_the_pytest_steps_run_every_test_that_needs_cuda() -> None:
    runs = []  # (files, -k expression) of each pytest step
    for _, _, argv in steps():
        if argv[:3] == ["python3", "-m", "pytest"]:
            files = [a for a in argv if a.startswith("tests/")]
            assert files and all((ROOT / f).is_file() for f in files), files
            runs.append((files, Expression.compile(argv[argv.index("-k") + 1]) if "-k" in argv else None))
    needed = cuda_tests()
    assert len(needed) >= 5  # the tests found by the search above, so that an empty search cannot pass
    for (file, name), keywords in needed.items():
        def match(word: str, keywords: set[str] = keywords, **_: object) -> bool:
            return any(word.lower() in k.lower() for k in keywords)

        assert any(file in files and (k is None or k.evaluate(match)) for files, k in runs), \
            f"{file}::{name} needs CUDA, but the GPU check does not run it"


def imported_modules(paths: list[Path]) -> set[str]:
    """Top-level names of every module the files import, at the top or inside functions."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def files_of_the_check() -> list[Path]:
    """The test files the check runs, the test modules they import, and conftest.py."""
    todo = [ROOT / arg for _, _, argv in steps() for arg in argv if arg.startswith("tests/")]
    todo.append(ROOT / "tests" / "conftest.py")
    seen: list[Path] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
                todo.append(ROOT / "tests" / (node.module.split(".", 1)[1] + ".py"))
    return seen


@functools.cache
def installed_modules() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    return {canonical(d) for d in installed_modules().get(module, [])}


def requirements(dist: str) -> set[str]:
    """What ``dist`` (as installed here, or its other build) needs on the device: the requirements whose markers
    hold there."""
    other = {b: a for a, b in BUILDS.items()}.get(dist, dist)
    try:
        listed = metadata.requires(dist)
    except metadata.PackageNotFoundError:
        listed = metadata.requires(other)
    needs = set()
    for text in listed or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({**DEVICE, "extra": ""}):
            needs.add(canonical(req.name))
    return needs


def provided(dist: str, by: set[str]) -> bool:
    return dist in by or BUILDS.get(dist) in by


def test_the_carried_wheels_are_what_the_device_image_lacks() -> None:
    sources = [*sorted((ROOT / "livecam").rglob("*.py")), *files_of_the_check(), BENCHMARKS / "gpu_probe.py"]
    stdlib = set(sys.stdlib_module_names) | {"livecam", "tests", "__future__"}
    needed: set[str] = set()
    for module in sorted(imported_modules(sources) - stdlib):
        dists = distributions(module)
        assert dists, f"{module} is imported but installed by no distribution here"
        if not any(provided(d, IMAGE) for d in dists):
            needed |= dists
    needed -= set(NOT_ON_THE_DEVICE)
    # what livecam and the check import that the image lacks, with what those need in turn
    closure = set(needed)
    for dist in list(closure):
        closure |= {r for r in requirements(dist) if not provided(r, IMAGE)}
    assert set(CARRIED) == closure, f"carry {sorted(closure)}, not {sorted(CARRIED)}"
    assert not set(CARRIED) & IMAGE, "a second copy of an image package would shadow the image's"
    assert len(CARRIED) == len(set(CARRIED))
    for dist in CARRIED:
        assert all(provided(r, IMAGE | set(CARRIED)) for r in requirements(dist)), dist


def test_the_wheels_are_the_versions_this_suite_runs() -> None:
    pins = dict(line.split("#")[0].split()[0].split("==") for line in (BENCHMARKS / "gpu_wheels.txt").read_text()
                .splitlines() if line.split("#")[0].strip())
    assert pins and all(canonical(name) in CARRIED for name in pins)
    for name, version in pins.items():
        assert metadata.version(name) == version, name


def test_the_dry_runs_stand_in_holds_only_what_the_image_has() -> None:
    recipe = names(BENCHMARKS / "gpu_image.txt")
    assert set(recipe) <= IMAGE, sorted(set(recipe) - IMAGE)
    assert {"torch", "torchvision", "onnxruntime", "onnx", "onnxscript", "numpy"} <= set(recipe)
    # everything the carried wheels need from the image is in it too, through the recipe's requirements (as far
    # as this environment knows them: the image's pytest plugins, say, are not installed here)
    closure, todo = set(), list(recipe)
    while todo:
        dist = todo.pop()
        if dist not in closure:
            closure.add(dist)
            try:
                todo += [r for r in requirements(dist) if not r.startswith(("nvidia-", "cuda-"))]
            except metadata.PackageNotFoundError:
                pass
    for dist in CARRIED:
        assert all(provided(r, closure | set(CARRIED)) for r in requirements(dist)), dist


def fake_wheels(folder: Path, size: int = 1000, extra: str | None = None) -> None:
    for name in (BENCHMARKS / "gpu_wheels.txt").read_text().splitlines():
        spec = name.split("#")[0].split()
        if spec:
            dist, version = spec[0].split("==")
            tag = "cp311-abi3-manylinux_2_28_x86_64" if dist == "av" else "py3-none-any"
            with open(folder / f"{dist.replace('-', '_')}-{version}-{tag}.whl", "wb") as f:
                f.truncate(size)
    if extra:
        (folder / extra).write_bytes(b"x")


@pytest.mark.parametrize("size, extra, problem", [
    (1000, None, None),
    (70 * 2**20, None, "over the device tool's 64 MiB"),
    (1000, "av-14.2.0-cp312-cp312-manylinux2014_x86_64.whl", "should hold one wheel of av"),
    (1000, "torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl", "holds 5 wheels"),
])
def test_gpu_wheels_check(tmp_path: Path, size: int, extra: str | None, problem: str | None) -> None:
    fake_wheels(tmp_path, size, extra)
    out = subprocess.run(["bash", str(WHEELS), "--check"], env={**os.environ, "GPU_WHEELS_DIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    if problem is None:
        assert out.returncode == 0 and "is ready" in out.stdout, out.stderr
    else:
        assert out.returncode == 1 and problem in out.stderr, out.stderr


def test_gpu_wheels_check_refuses_a_wheel_for_another_python(tmp_path: Path) -> None:
    fake_wheels(tmp_path)
    av = next(tmp_path.glob("av-*.whl"))
    av.rename(tmp_path / "av-18.1.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    out = subprocess.run(["bash", str(WHEELS), "--check"], env={**os.environ, "GPU_WHEELS_DIR": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not for CPython 3.12 on manylinux x86_64" in out.stderr


def test_gpu_wheels_downloads_for_the_devices_python_and_platform() -> None:
    platform = re.search(r"^PLATFORM=\((.*?)\)$", WHEELS.read_text(), re.M | re.S)[1].split()
    assert platform[:2] == ["--python-version", "3.12"] and "--only-binary=:all:" in platform
    assert {"manylinux2014_x86_64", "manylinux_2_28_x86_64"} <= set(platform[platform.index("--platform") + 1::2])
