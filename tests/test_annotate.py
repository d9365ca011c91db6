"""livecam annotate on a real folder of videos: mirrored outputs, the manifest, resume, --force, --jobs, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from livecam import annotate
from livecam.errors import LivecamError
from tests.conftest import CAT_CLASSES, make_video, photo_bgr, read_video

SIZE = (160, 120)
CLIPS = {"cat.mp4": ("chelsea", 12), "day1/coffee.avi": ("coffee", 16), "day1/deep/astronaut.mp4": ("astronaut", 14)}
BROKEN = "day2/broken.mp4"


def _frames(photo: str, count: int) -> list[np.ndarray]:
    image = cv2.resize(photo_bgr(photo), SIZE, interpolation=cv2.INTER_AREA)
    return [np.roll(image, 3 * i, axis=1) for i in range(count)]


def _archive(root: Path, clips: dict[str, tuple[str, int]] = CLIPS, broken: bool = True) -> Path:
    for name, (photo, count) in clips.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_video(root / name, _frames(photo, count), fps=10.0)
    if broken:
        (root / BROKEN).parent.mkdir(parents=True, exist_ok=True)
        (root / BROKEN).write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return root


@pytest.fixture(scope="module")
def graph(lite0_graph: Path) -> Path:
    """Lite0's Grad-CAM as one ONNX file: the subprocesses run it on ONNX Runtime without importing PyTorch."""
    return lite0_graph


def _annotate(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livecam", "annotate", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _latest(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in _manifest(out)}


def _outputs(out: Path) -> dict[str, int]:
    """Every file under out but the manifest (hidden ones too), with its decoded frame count."""
    return {str(p.relative_to(out)): len(read_video(p)[0]) for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}


EXPECTED = {"cat.mp4": 12, "day1/coffee.mp4": 16, "day1/deep/astronaut.mp4": 14}


def test_planning_mirrors_folders_and_refuses_collisions(tmp_path: Path) -> None:
    root = _archive(tmp_path / "in", broken=False)
    out = root / "annotated"  # inside the input folder: never walked
    out.mkdir()
    make_video(out / "old.mp4", _frames("coffee", 2))
    (root / "notes.txt").write_text("not a video")
    pairs = annotate.find_inputs([str(root)], out)
    assert [(str(s.relative_to(root)), str(r)) for s, r in pairs] == [
        ("cat.mp4", "cat.mp4"), ("day1/coffee.avi", "day1/coffee.mp4"),
        ("day1/deep/astronaut.mp4", "day1/deep/astronaut.mp4")]
    # files and globs: relative to the deepest folder holding them all; a file named twice counts once
    loose = annotate.find_inputs([str(root / "day1/coffee.avi"), str(root / "day1/**/*.mp4"),
                                  str(root / "day1/coffee.avi")], tmp_path / "o")
    assert [str(r) for _, r in loose] == ["coffee.mp4", "deep/astronaut.mp4"]
    make_video(root / "day1/coffee.mp4", _frames("coffee", 2))  # coffee.avi and coffee.mp4 -> one output
    with pytest.raises(LivecamError, match="would both be written"):
        annotate.find_inputs([str(root)], tmp_path / "o")
    with pytest.raises(LivecamError, match="does not exist"):
        annotate.find_inputs([str(root / "nope.mp4")], tmp_path / "o")
    with pytest.raises(LivecamError, match="no video file matches"):
        annotate.find_inputs([str(root / "*.mkv")], tmp_path / "o")
    with pytest.raises(LivecamError, match="would replace it"):
        annotate.find_inputs([str(root / "cat.mp4")], root)


def test_an_archive_is_annotated_resumed_and_forced(graph: Path, tmp_path: Path) -> None:
    root = _archive(tmp_path / "archive")
    out = tmp_path / "out"
    first = _annotate(root, "--out-dir", out, "--model", graph)
    assert first.returncode == 1, first.stderr
    assert _outputs(out) == EXPECTED  # mirrored, every frame, and no temporary file left
    latest = _latest(out)
    assert {name: r["status"] for name, r in latest.items()} == {
        "cat.mp4": "done", "coffee.avi": "done", "astronaut.mp4": "done", "broken.mp4": "failed"}
    cat = latest["cat.mp4"]
    assert cat["frames"] == 12 and cat["output"] == str(out / "cat.mp4") and cat["fps"] > 0
    assert cat["top_classes"][0]["name"] in CAT_CLASSES and sum(c["count"] for c in cat["top_classes"]) <= 12
    assert cat["source_size"] == (root / "cat.mp4").stat().st_size
    assert cat["source_mtime_ns"] == (root / "cat.mp4").stat().st_mtime_ns
    assert "could not read" in latest["broken.mp4"]["error"] and latest["broken.mp4"]["frames"] == 0
    broken_rows = [line for line in first.stdout.splitlines() if "broken.mp4" in line]
    assert len(broken_rows) == 1 and broken_rows[0].startswith("failed")
    stamps = {p: (out / p).stat().st_mtime_ns for p in EXPECTED}

    again = _annotate(root, "--out-dir", out, "--model", graph)
    assert again.returncode == 1, again.stderr
    assert len(_manifest(out)) == 8  # appended: the latest line per input wins
    latest = _latest(out)
    assert [latest[n]["status"] for n in ("cat.mp4", "coffee.avi", "astronaut.mp4", "broken.mp4")] == [
        "skipped", "skipped", "skipped", "failed"]
    assert latest["cat.mp4"]["frames"] == 12 and latest["cat.mp4"]["top_classes"] == cat["top_classes"]
    assert {p: (out / p).stat().st_mtime_ns for p in EXPECTED} == stamps  # not rewritten

    os.utime(root / "day1/coffee.avi", ns=(time.time_ns(), time.time_ns()))  # the source changed
    (out / "cat.mp4").unlink()  # the output is gone
    (root / BROKEN).unlink()
    third = _annotate(root, "--out-dir", out, "--model", graph)
    assert third.returncode == 0, third.stdout + third.stderr
    latest = _latest(out)
    assert {n: latest[n]["status"] for n in ("cat.mp4", "coffee.avi", "astronaut.mp4")} == {
        "cat.mp4": "done", "coffee.avi": "done", "astronaut.mp4": "skipped"}
    assert _outputs(out) == EXPECTED

    forced = _annotate(root, "--out-dir", out, "--model", graph, "--force")
    assert forced.returncode == 0, forced.stderr
    assert {r["status"] for r in _manifest(out)[-3:]} == {"done"}
    recoloured = _annotate(root, "--out-dir", out, "--model", graph, "--colormap", "viridis")
    assert {r["status"] for r in _manifest(out)[-3:]} == {"done"}, recoloured.stderr  # other settings: redone
    assert _outputs(out) == EXPECTED
    with av.open(str(out / "cat.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"  # the default recording

    recoded = _annotate(root, "--out-dir", out, "--model", graph, "--colormap", "viridis", "--codec", "mp4v")
    assert {r["status"] for r in _manifest(out)[-3:]} == {"done"}, recoded.stderr  # another codec: redone
    assert {r["settings"]["codec"] for r in _manifest(out)[-3:]} == {"mp4v"}
    with av.open(str(out / "cat.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert _outputs(out) == EXPECTED


def test_two_workers_give_the_same_outputs_as_one(graph: Path, tmp_path: Path) -> None:
    root = _archive(tmp_path / "archive")
    results = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        proc = _annotate(root, "--out-dir", out, "--model", graph, "--jobs", jobs)
        assert proc.returncode == 1, proc.stderr
        assert "broken.mp4" in proc.stdout
        results[jobs] = (out, {name: (r["status"], r["frames"], r["top_classes"]) for name, r in _latest(out).items()})
    assert results["1"][1] == results["2"][1]
    assert _outputs(results["1"][0]) == _outputs(results["2"][0]) == EXPECTED
    for name in EXPECTED:
        one, two = (read_video(results[j][0] / name)[0] for j in ("1", "2"))
        assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))  # no speed readout drawn


@pytest.mark.parametrize("jobs", [("1",), ("2",), ("2", "--chunk-seconds", "2")], ids=["1", "2", "2-in-parts"])
def test_ctrl_c_keeps_finished_files_and_leaves_no_partial_one(graph: Path, tmp_path: Path,
                                                               jobs: tuple[str, ...]) -> None:
    clips = {f"clip{i}.mp4": (photo, 60) for i, photo in enumerate(["chelsea", "coffee", "astronaut"] * 3)}
    root = _archive(tmp_path / "archive", clips, broken=False)
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
    records = _manifest(out)  # valid JSON lines
    assert 1 <= len(records) < len(clips) and {r["status"] for r in records} == {"done"}
    finished = {Path(r["output"]).name for r in records}
    assert _outputs(out) == {name: 60 for name in finished}  # complete files only, nothing hidden left

    rest = _annotate(root, "--out-dir", out, "--model", graph, "--jobs", *jobs)
    assert rest.returncode == 0, rest.stderr
    assert _outputs(out) == {name: 60 for name in clips}
    assert sorted(r["status"] for r in _manifest(out)[len(records):]) == sorted(
        ["skipped"] * len(records) + ["done"] * (len(clips) - len(records)))


def test_bad_usage_is_one_line_and_exit_2(graph: Path, tmp_path: Path) -> None:
    root = _archive(tmp_path / "archive", {"cat.mp4": ("chelsea", 3), "cup.mp4": ("coffee", 3)}, broken=False)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    for args, message in (([root, "--out-dir", afile], "is a file"),
                          ([str(tmp_path / "*.mkv"), "--out-dir", tmp_path / "u1"], "no video file matches"),
                          ([tmp_path / "missing", "--out-dir", tmp_path / "u2"], "does not exist"),
                          ([root, "--out-dir", tmp_path / "o", "--model", tmp_path / "no.onnx"], "does not exist"),
                          ([root, "--out-dir", tmp_path / "o2", "--model", tmp_path / "no.onnx", "-j", "2"],
                           "does not exist"),
                          ([root, "--out-dir", tmp_path / "u3", "--codec", "mjpeg"], "cannot go in a .mp4 file")):
        proc = _annotate(*args, "--model", graph) if "--model" not in args else _annotate(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert errors == [proc.stderr.splitlines()[-1]] and message in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not any((tmp_path / u).exists() for u in ("u1", "u2", "u3"))  # nothing made before the check


def test_help_explains_the_options() -> None:
    proc = subprocess.run([sys.executable, "-m", "livecam", "annotate", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    for option in ("--out-dir", "--jobs", "--force", "--model", "--batch", "manifest.jsonl", "Exit codes", "--ray",
                   "--gpus-per-worker", "--retries", "--codec", "--chunk-seconds", "--threads"):
        assert option in proc.stdout


def test_local_workers_share_the_cores_out(graph: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from livecam.engines.launch import EngineOptions, open_engine

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert [annotate.threads_per_worker(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    engine = open_engine(EngineOptions(model=str(graph), threads=3)).engine
    try:  # what a worker's engine is given reaches ONNX Runtime
        assert engine.session.session.get_session_options().intra_op_num_threads == 3
    finally:
        engine.close()


def test_planning_imports_no_torch(tmp_path: Path) -> None:
    _archive(tmp_path / "in", {"cat.mp4": ("chelsea", 2)}, broken=False)
    code = ("import sys\nfrom pathlib import Path\nfrom livecam import annotate\n"
            f"p = annotate.plan([{str(tmp_path / 'in')!r}], Path({str(tmp_path / 'out')!r}), {{}})\n"
            "print(len(p.jobs), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "False"], out.stderr


def test_a_graphs_metadata_is_read_without_loading_it(graph: Path, tmp_path: Path) -> None:
    import onnx

    from livecam.engines.runtime.graph import GraphInfo, read_metadata

    reference = {p.key: p.value for p in onnx.load(str(graph), load_external_data=False).metadata_props}
    assert read_metadata(graph) == reference and len(reference) > 10
    assert (GraphInfo.read(graph).layer, GraphInfo.read(graph).method) == ("_head_act", "gradcam")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(graph.read_bytes()[:100_000])  # the graph's first bytes: its length runs past the end
    text = tmp_path / "text.onnx"
    text.write_text("not a graph\n" * 10)
    for path in (cut, text, tmp_path / "missing.onnx"):
        with pytest.raises(LivecamError, match="is not an ONNX file livecam can read"):
            read_metadata(path)

def test_explicit_defaults_and_older_manifests_compare_equal(graph: Path, tmp_path: Path) -> None:
    root = _archive(tmp_path / "archive", {"cat.mp4": ("chelsea", 6)}, broken=False)
    out = tmp_path / "out"
    first = _annotate(root, "--out-dir", out, "--model", graph)
    assert first.returncode == 0, first.stderr
    explicit = ("--method", "gradcam", "--crf", "23", "--layer", "_head_act", "--codec", "h264")
    for args in (explicit, ()):
        proc = _annotate(root, "--out-dir", out, "--model", graph, *args)
        assert proc.returncode == 0 and _manifest(out)[-1]["status"] == "skipped", (args, proc.stderr)
    settings = _manifest(out)[0]["settings"]
    assert {k: settings.get(k) for k in ("method", "layer", "codec", "crf", "defaults")} == {
        "method": "gradcam", "layer": "_head_act", "codec": "h264", "crf": 23,
        "defaults": ["codec", "crf", "layer", "method"]}  # resolved: the graph's own, x264's default CRF
    # a manifest from before settings were resolved: nulls for what was not given, no codec
    old = _manifest(out)[0]
    old["settings"].update(method=None, layer=None, crf=None)
    for key in ("codec", "defaults"):
        del old["settings"][key]
    (out / "manifest.jsonl").write_text(json.dumps(old) + "\n")
    for args in (explicit, ()):
        proc = _annotate(root, "--out-dir", out, "--model", graph, *args)
        assert proc.returncode == 0 and _manifest(out)[-1]["status"] == "skipped", (args, proc.stderr)
    redone = _annotate(root, "--out-dir", out, "--model", graph, "--crf", "30")
    assert redone.returncode == 0 and _manifest(out)[-1]["status"] == "done", redone.stderr


def _zoo(**given) -> dict:
    from livecam.engines.launch import EngineOptions

    return annotate.settings_of(EngineOptions(**given))


def _done_line(source: Path, out: Path, settings: dict) -> dict:
    stat = source.stat()
    return {"input": str(source.resolve()), "output": str(out.resolve() / source.name), "status": "done",
            "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns, "settings": settings}


def _skipped(root: Path, out: Path, earlier: dict, now: dict) -> bool:
    (out / "manifest.jsonl").write_text(json.dumps(_done_line(root / "cat.mp4", out, earlier)) + "\n")
    planned = annotate.plan([str(root)], out, now)
    return bool(planned.skipped) and not planned.jobs


def test_a_zoo_models_default_layer_is_found_only_when_the_comparison_needs_it(
        graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from livecam.engines import launch

    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    root = _archive(tmp_path / "in", {"cat.mp4": ("chelsea", 2)}, broken=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.mp4").write_bytes(b"livecam's output")
    default = _zoo()
    assert {k: default[k] for k in ("method", "layer", "codec", "crf")} == {
        "method": "gradcam", "layer": None, "codec": "h264", "crf": 23}
    by_worker = {**default, "layer": "_head_act"}  # what a worker writes: the layer its engine took
    looked_up = []
    monkeypatch.setattr(annotate.Defaults, "layer", property(lambda self: looked_up.append(1) or "_head_act"))
    assert _skipped(root, out, by_worker, default) and _skipped(root, out, by_worker, _zoo(layer="_head_act"))
    assert _skipped(root, out, {**default, "defaults": []}, default)  # an older manifest: a null layer
    assert not looked_up  # none of these needed the model's default layer
    assert not _skipped(root, out, by_worker, _zoo(layer="_blocks.15"))
    assert not looked_up
    assert _skipped(root, out, {**by_worker, "defaults": []}, default)  # named before, left to the model now
    older = {**default, "method": None, "crf": None, "defaults": []}
    older.pop("codec")
    assert _skipped(root, out, {**older, "layer": None}, _zoo(layer="_head_act", method="gradcam"))
    assert len(looked_up) == 2
    monkeypatch.undo()

    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    defaults = annotate.Defaults(default)
    assert defaults.layer == "_head_act"  # no cached graph: the model's architecture says
    weights = launch.weights_file("efficientnet_lite0", None)
    cached = launch.graph_cache_path("efficientnet_lite0", weights, "gradcam", None, 1, None, "fp32")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(graph.read_bytes())
    defaults = annotate.Defaults(_zoo(target_class="Tabby"))
    assert defaults.layer == "_head_act" and defaults.class_names[281] == "tabby"  # from the cached graph
    # a class by name and by index is one class, where the class names are at hand (the cached graph)
    assert _skipped(root, out, _zoo(target_class="281"), _zoo(target_class=" Tabby"))
    assert not _skipped(root, out, _zoo(target_class="282"), _zoo(target_class="tabby"))
    worker = annotate.FileWorker(launch.EngineOptions(threads=1), settings=default)  # runs the cached graph
    try:  # the worker writes the layer the model was explained at
        assert worker.settings["layer"] == "_head_act" and default["layer"] is None
    finally:
        worker.close()
    cached.unlink()
    assert not _skipped(root, out, _zoo(target_class="281"), _zoo(target_class="tabby"))  # no names: not known


def test_a_torn_last_line_is_reported_once_and_the_next_line_kept(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "manifest.jsonl"
    first = json.dumps({"input": "/a.mp4", "output": "/o/a.mp4", "status": "done"})
    torn = json.dumps({"input": "/b.mp4", "output": "/o/b.mp4", "status": "done"})[:25]
    path.write_text(first + "\n" + torn)  # a run killed while writing its second line
    with caplog.at_level("WARNING", logger="livecam"):
        with annotate.Manifest(tmp_path) as manifest:
            manifest.append({"input": "/c.mp4", "output": "/o/c.mp4", "status": "done"})
        assert [r.getMessage() for r in caplog.records if "torn" in r.getMessage()] != []
        caplog.clear()
        assert sorted(annotate.read_manifest(path)) == ["/a.mp4", "/c.mp4"]  # the new line is not glued on
        with annotate.Manifest(tmp_path) as manifest:
            manifest.append({"input": "/d.mp4", "output": "/o/d.mp4", "status": "done"})
        assert sorted(annotate.read_manifest(path)) == ["/a.mp4", "/c.mp4", "/d.mp4"]
        assert caplog.records == []  # reported once: not by every later run
    assert path.read_text().startswith(first + "\n" + torn + "\n")  # left as it was
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "manifest.jsonl").write_text(first)  # a whole line without its newline: nothing torn
    with caplog.at_level("WARNING", logger="livecam"), annotate.Manifest(tmp_path / "sub") as manifest:
        manifest.append({"input": "/c.mp4", "output": "/o/c.mp4", "status": "done"})
    assert caplog.records == [] and sorted(annotate.read_manifest(tmp_path / "sub" / "manifest.jsonl")) == [
        "/a.mp4", "/c.mp4"]


def test_a_file_livecam_did_not_write_is_left_alone_unless_forced(graph: Path, tmp_path: Path) -> None:
    root = _archive(tmp_path / "archive", broken=False)
    out = tmp_path / "out"
    (out / "day1/deep").mkdir(parents=True)
    (out / "cat.mp4").write_bytes(b"my holiday")  # where cat.mp4's output goes: not livecam's
    (out / "day1/deep/.astronaut.partial.mp4").write_bytes(b"a killed run's")  # livecam's own working file
    for attempt in range(2):  # a failed line does not make the file livecam's: refused again
        proc = _annotate(root, "--out-dir", out, "--model", graph)
        assert proc.returncode == 1, proc.stderr
        assert f"{2 - 2 * attempt} to annotate, {2 * attempt} done before, 1 refused" in proc.stderr
        assert (out / "cat.mp4").read_bytes() == b"my holiday"
        latest = _latest(out)
        assert {n: r["status"] for n, r in latest.items()} == {
            "cat.mp4": "failed", "coffee.avi": "done" if attempt == 0 else "skipped",
            "astronaut.mp4": "done" if attempt == 0 else "skipped"}
        assert "no manifest line says livecam wrote it" in latest["cat.mp4"]["error"]
        assert "--force" in latest["cat.mp4"]["error"]
    assert len(read_video(out / "day1/coffee.mp4")[0]) == 16  # the rest went on
    assert not (out / "day1/deep/.astronaut.partial.mp4").exists()  # the leftover was written over, then moved

    forced = _annotate(root, "--out-dir", out, "--model", graph, "--force")
    assert forced.returncode == 0, forced.stderr
    assert {n: r["status"] for n, r in _latest(out).items()} == {n: "done" for n in latest}
    assert len(read_video(out / "cat.mp4")[0]) == 12 and len(read_video(out / "day1/deep/astronaut.mp4")[0]) == 14


def test_planning_knows_which_files_are_livecams(tmp_path: Path) -> None:
    root = _archive(tmp_path / "in", {"cat.mp4": ("chelsea", 2), "cup.mp4": ("coffee", 2)}, broken=False)
    out = (tmp_path / "out").resolve()
    out.mkdir()
    for name in ("cat.mp4", "cup.mp4"):
        (out / name).write_bytes(b"an older output")
    source = str((root / "cat.mp4").resolve())
    lines = [{"input": source, "output": str(out / "cat.mp4"), "status": "done"},  # livecam wrote it ...
             {"input": source, "output": str(out / "cat.mp4"), "status": "failed"},  # ... and a later run failed
             {"input": str((root / "cup.mp4").resolve()), "output": str(out / "cup.mp4"), "status": "failed"}]
    (out / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    planned = annotate.plan([str(root)], out, {})
    assert [Path(j.output).name for j in planned.jobs] == ["cat.mp4"]  # livecam's: done again, replaced
    assert [(Path(j.output).name, "--force" in why) for j, why in planned.refused] == [("cup.mp4", True)]
    assert [Path(j.output).name for j in annotate.plan([str(root)], out, {}, force=True).jobs] == ["cat.mp4", "cup.mp4"]

