"""livecam annotate on Ray: a local Ray cluster started inside the test gives what the local path gives,
a worker killed mid-file is restarted and its file done again, and without Ray --ray is one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from livecam import annotate
from livecam.cli import flag
from livecam.errors import LivecamError
from livecam.engines.launch import EngineOptions
from tests.conftest import (ARCHIVE_OUTPUTS, annotate_cli, clip_archive, index_video, latest_lines, make_video,
                            outputs_of, panned, read_index, read_video)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for this module's tests: two CPUs, shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(root: Path, out: Path, graph: Path, **kwargs) -> list[dict]:
    from livecam.annotate.ray import run_ray

    options = EngineOptions(model=str(graph))
    settings = annotate.settings_of(options, codec="h264", crf=None)
    out.mkdir(parents=True, exist_ok=True)
    planned = annotate.plan([str(root)], out, settings)
    with annotate.Manifest(out.resolve()) as manifest:
        return run_ray(planned.jobs, options, settings, on_result=manifest.append, **kwargs)


def test_ray_gives_what_the_local_path_gives(cluster, lite0_graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive")  # three real clips and a broken file
    records = _run(root, tmp_path / "ray", lite0_graph, workers=2)
    local = annotate_cli(root, "--out-dir", tmp_path / "local", "--model", lite0_graph)
    assert local.returncode == 1, local.stderr
    by_ray, by_local = latest_lines(tmp_path / "ray"), latest_lines(tmp_path / "local")
    assert {n: r["status"] for n, r in by_ray.items()} == {n: r["status"] for n, r in by_local.items()} == {
        "cat.mp4": "done", "coffee.avi": "done", "astronaut.mp4": "done", "broken.mp4": "failed"}
    assert len(records) == 4
    assert {n: (r["frames"], r["top_classes"]) for n, r in by_ray.items()} == {
        n: (r["frames"], r["top_classes"]) for n, r in by_local.items()}
    assert outputs_of(tmp_path / "ray") == outputs_of(tmp_path / "local") == ARCHIVE_OUTPUTS
    for name in ARCHIVE_OUTPUTS:
        a, b = (read_video(tmp_path / side / name)[0] for side in ("ray", "local"))
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_ray_joins_the_parts_of_a_long_file_in_order(cluster, lite0_graph: Path, tmp_path: Path) -> None:
    from livecam.annotate.ray import run_ray

    (tmp_path / "in").mkdir()
    index_video(tmp_path / "in" / "long.mp4", 150)
    options = EngineOptions(model=str(lite0_graph), alpha=0.2)
    settings = annotate.settings_of(options, codec="h264", crf=None)
    out = tmp_path / "out"
    out.mkdir()
    results: list[dict] = []
    chunker = annotate.Chunker(annotate.plan([str(tmp_path / "in")], out, settings).jobs, 2.0, settings,
                               results.append)
    assert len(chunker.work) == 3
    run_ray(chunker.work, options, settings, workers=2, on_result=chunker.take)
    chunker.close()
    assert [(r["status"], r["frames"], r["chunks"]) for r in results] == [("done", 150, 3)]
    assert sorted(p.name for p in out.iterdir()) == ["long.mp4"]
    assert [read_index(frame) for frame in read_video(out / "long.mp4")[0]] == list(range(150))


def test_a_worker_killed_mid_file_is_restarted_and_the_file_done(cluster, lite0_graph: Path, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    make_video(root / "long.mp4", panned("chelsea", 240), fps=10.0)
    out = tmp_path / "out"
    killed = []

    def kill_when_writing(ray_module, actors) -> None:
        pid = ray_module.get(actors[0].pid.remote())

        def watch() -> None:
            end = time.monotonic() + 60
            while time.monotonic() < end:
                if list(out.glob(".*")):  # the worker is writing the file
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.01)

        threading.Thread(target=watch, daemon=True).start()

    records = _run(root, out, lite0_graph, workers=1, retries=1, on_start=kill_when_writing)
    assert killed, "the worker was never seen writing"
    assert [r["status"] for r in records] == ["done"], records
    assert outputs_of(out) == {"long.mp4": 240}  # complete, and no temporary file left


def test_ray_through_the_cli_resumes(lite0_graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive")
    out = tmp_path / "out"
    first = annotate_cli(root, "--out-dir", out, "--model", lite0_graph, "--ray", timeout=300)
    assert first.returncode == 1, first.stderr
    assert "with 2 Ray actors" in first.stderr and "broken.mp4" in first.stdout
    assert outputs_of(out) == ARCHIVE_OUTPUTS
    again = annotate_cli(root, "--out-dir", out, "--model", lite0_graph, "--ray", timeout=300)
    assert again.returncode == 1, again.stderr
    assert {n: r["status"] for n, r in latest_lines(out).items()} == {
        "cat.mp4": "skipped", "coffee.avi": "skipped", "astronaut.mp4": "skipped", "broken.mp4": "failed"}


def test_a_rerun_with_nothing_to_do_starts_no_ray(lite0_graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive", {"cat.mp4": ("chelsea", 4)}, broken=False)
    out = tmp_path / "out"
    first = annotate_cli(root, "--out-dir", out, "--model", lite0_graph)  # done here: the settings are the same
    assert first.returncode == 0, first.stderr
    args = ["annotate", str(root), "--out-dir", str(out), "--model", str(lite0_graph), "--ray"]
    code = ("import sys\nfrom livecam.cli import main\n"
            f"try:\n    main({args!r})\n"
            "finally:\n    print('ray imported' if 'ray' in sys.modules else 'no ray')\n")
    rerun = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1] == "no ray" and "0 to annotate, 1 done before" in rerun.stderr
    assert [r["status"] for r in latest_lines(out).values()] == ["skipped"]


def test_without_ray_the_option_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from livecam.annotate.ray import check_ray, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as in an install without the extra
    lacks = r"ray needs Ray, which this install lacks: pip install 'livecam\[ray\]'"
    for check in (check_ray, import_ray):
        with pytest.raises(LivecamError, match="^" + lacks) as raised:  # the library's words: the parameter
            check()
        assert re.match("--" + lacks, raised.value.render(flag))  # the CLI's: its flag
