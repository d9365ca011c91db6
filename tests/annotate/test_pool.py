"""livecam annotate's local workers: --jobs gives what one worker gives, Ctrl-C keeps finished files only, the
cores are shared out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from livecam import annotate
from tests.conftest import (ARCHIVE_OUTPUTS, annotate_cli, clip_archive, latest_lines, manifest_lines, outputs_of,
                            read_video)


def test_two_workers_give_the_same_outputs_as_one(graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive")
    results = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        proc = annotate_cli(root, "--out-dir", out, "--model", graph, "--jobs", jobs)
        assert proc.returncode == 1, proc.stderr
        assert "broken.mp4" in proc.stdout
        results[jobs] = (out, {name: (r["status"], r["frames"], r["top_classes"])
                               for name, r in latest_lines(out).items()})
    assert results["1"][1] == results["2"][1]
    assert outputs_of(results["1"][0]) == outputs_of(results["2"][0]) == ARCHIVE_OUTPUTS
    for name in ARCHIVE_OUTPUTS:
        one, two = (read_video(results[j][0] / name)[0] for j in ("1", "2"))
        assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))  # no speed readout drawn


@pytest.mark.parametrize("jobs", [("1",), ("2",), ("2", "--chunk-seconds", "2")], ids=["1", "2", "2-in-parts"])
def test_ctrl_c_keeps_finished_files_and_leaves_no_partial_one(graph: Path, tmp_path: Path,
                                                               jobs: tuple[str, ...]) -> None:
    clips = {f"clip{i}.mp4": (photo, 60) for i, photo in enumerate(["chelsea", "coffee", "astronaut"] * 3)}
    root = clip_archive(tmp_path / "archive", clips, broken=False)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "annotate", str(root), "--out-dir", str(out),
                             "--model", str(graph), "--jobs", *jobs], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 180
    while not (manifest.is_file() and manifest.read_text().strip()) and proc.poll() is None:
        assert time.monotonic() < deadline, "no file finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    records = manifest_lines(out)  # valid JSON lines
    assert 1 <= len(records) < len(clips) and {r["status"] for r in records} == {"done"}
    finished = {Path(r["output"]).name for r in records}
    assert outputs_of(out) == {name: 60 for name in finished}  # complete files only, nothing hidden left

    rest = annotate_cli(root, "--out-dir", out, "--model", graph, "--jobs", *jobs)
    assert rest.returncode == 0, rest.stderr
    assert outputs_of(out) == {name: 60 for name in clips}
    assert sorted(r["status"] for r in manifest_lines(out)[len(records):]) == sorted(
        ["skipped"] * len(records) + ["done"] * (len(clips) - len(records)))


def test_local_workers_share_the_cores_out(graph: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from livecam.engines.launch import EngineOptions, open_engine

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert [annotate.threads_per_worker(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    engine = open_engine(EngineOptions(model=str(graph), threads=3)).engine
    try:  # what a worker's engine is given reaches ONNX Runtime
        assert engine.session.session.get_session_options().intra_op_num_threads == 3
    finally:
        engine.close()
