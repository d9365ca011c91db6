"""livecam annotate's planning on a real folder of videos: mirrored outputs, resume, --force, the files in the way,
bad usage in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from livecam import annotate
from livecam.errors import LivecamError
from tests.conftest import (ARCHIVE_BROKEN, ARCHIVE_OUTPUTS, CAT_CLASSES, annotate_cli, as_the_cli_says, clip_archive,
                            latest_lines, make_video, manifest_lines, outputs_of, panned, read_video)


def test_planning_mirrors_folders_and_refuses_collisions(tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "in", broken=False)
    out = root / "annotated"  # inside the input folder: never walked
    out.mkdir()
    make_video(out / "old.mp4", panned("coffee", 2))
    (root / "notes.txt").write_text("not a video")
    pairs = annotate.find_inputs([str(root)], out)
    assert [(str(s.relative_to(root)), str(r)) for s, r in pairs] == [
        ("cat.mp4", "cat.mp4"), ("day1/coffee.avi", "day1/coffee.mp4"),
        ("day1/deep/astronaut.mp4", "day1/deep/astronaut.mp4")]
    # files and globs: relative to the deepest folder holding them all; a file named twice counts once
    loose = annotate.find_inputs([str(root / "day1/coffee.avi"), str(root / "day1/**/*.mp4"),
                                  str(root / "day1/coffee.avi")], tmp_path / "o")
    assert [str(r) for _, r in loose] == ["coffee.mp4", "deep/astronaut.mp4"]
    make_video(root / "day1/coffee.mp4", panned("coffee", 2))  # coffee.avi and coffee.mp4 -> one output
    with pytest.raises(LivecamError, match="would both be written"):
        annotate.find_inputs([str(root)], tmp_path / "o")
    with pytest.raises(LivecamError, match="does not exist"):
        annotate.find_inputs([str(root / "nope.mp4")], tmp_path / "o")
    with pytest.raises(LivecamError, match="no video file matches"):
        annotate.find_inputs([str(root / "*.mkv")], tmp_path / "o")
    with pytest.raises(LivecamError, match="would replace it"):
        annotate.find_inputs([str(root / "cat.mp4")], root)


def test_an_archive_is_annotated_resumed_and_forced(graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive")
    out = tmp_path / "out"
    first = annotate_cli(root, "--out-dir", out, "--model", graph)
    assert first.returncode == 1, first.stderr
    assert outputs_of(out) == ARCHIVE_OUTPUTS  # mirrored, every frame, and no temporary file left
    latest = latest_lines(out)
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
    stamps = {p: (out / p).stat().st_mtime_ns for p in ARCHIVE_OUTPUTS}

    again = annotate_cli(root, "--out-dir", out, "--model", graph)
    assert again.returncode == 1, again.stderr
    assert len(manifest_lines(out)) == 8  # appended: the latest line per input wins
    latest = latest_lines(out)
    assert [latest[n]["status"] for n in ("cat.mp4", "coffee.avi", "astronaut.mp4", "broken.mp4")] == [
        "skipped", "skipped", "skipped", "failed"]
    assert latest["cat.mp4"]["frames"] == 12 and latest["cat.mp4"]["top_classes"] == cat["top_classes"]
    assert {p: (out / p).stat().st_mtime_ns for p in ARCHIVE_OUTPUTS} == stamps  # not rewritten

    os.utime(root / "day1/coffee.avi", ns=(time.time_ns(), time.time_ns()))  # the source changed
    (out / "cat.mp4").unlink()  # the output is gone
    (root / ARCHIVE_BROKEN).unlink()
    third = annotate_cli(root, "--out-dir", out, "--model", graph)
    assert third.returncode == 0, third.stdout + third.stderr
    latest = latest_lines(out)
    assert {n: latest[n]["status"] for n in ("cat.mp4", "coffee.avi", "astronaut.mp4")} == {
        "cat.mp4": "done", "coffee.avi": "done", "astronaut.mp4": "skipped"}
    assert outputs_of(out) == ARCHIVE_OUTPUTS

    forced = annotate_cli(root, "--out-dir", out, "--model", graph, "--force")
    assert forced.returncode == 0, forced.stderr
    assert {r["status"] for r in manifest_lines(out)[-3:]} == {"done"}
    recoloured = annotate_cli(root, "--out-dir", out, "--model", graph, "--colormap", "viridis")
    assert {r["status"] for r in manifest_lines(out)[-3:]} == {"done"}, recoloured.stderr  # other settings: redone
    assert outputs_of(out) == ARCHIVE_OUTPUTS
    with av.open(str(out / "cat.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"  # the default recording

    recoded = annotate_cli(root, "--out-dir", out, "--model", graph, "--colormap", "viridis", "--codec", "mp4v")
    assert {r["status"] for r in manifest_lines(out)[-3:]} == {"done"}, recoded.stderr  # another codec: redone
    assert {r["settings"]["codec"] for r in manifest_lines(out)[-3:]} == {"mp4v"}
    with av.open(str(out / "cat.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert outputs_of(out) == ARCHIVE_OUTPUTS


def test_bad_usage_is_one_line_and_exit_2(graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive", {"cat.mp4": ("chelsea", 3), "cup.mp4": ("coffee", 3)}, broken=False)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    for args, message in (([root, "--out-dir", afile], "is a file"),
                          ([str(tmp_path / "*.mkv"), "--out-dir", tmp_path / "u1"], "no video file matches"),
                          ([tmp_path / "missing", "--out-dir", tmp_path / "u2"], "does not exist"),
                          ([root, "--out-dir", tmp_path / "o", "--model", tmp_path / "no.onnx"], "does not exist"),
                          ([root, "--out-dir", tmp_path / "o2", "--model", tmp_path / "no.onnx", "-j", "2"],
                           "does not exist"),
                          ([root, "--out-dir", tmp_path / "u3", "--codec", "mjpeg"], "cannot go in a .mp4 file")):
        proc = annotate_cli(*args, "--model", graph) if "--model" not in args else annotate_cli(*args)
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


def test_planning_imports_no_torch(tmp_path: Path) -> None:
    clip_archive(tmp_path / "in", {"cat.mp4": ("chelsea", 2)}, broken=False)
    code = ("import sys\nfrom pathlib import Path\nfrom livecam import annotate\n"
            f"p = annotate.plan([{str(tmp_path / 'in')!r}], Path({str(tmp_path / 'out')!r}), {{}})\n"
            "print(len(p.jobs), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "False"], out.stderr


def test_a_file_livecam_did_not_write_is_left_alone_unless_forced(graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive", broken=False)
    out = tmp_path / "out"
    (out / "day1/deep").mkdir(parents=True)
    (out / "cat.mp4").write_bytes(b"my holiday")  # where cat.mp4's output goes: not livecam's
    (out / "day1/deep/.astronaut.partial.mp4").write_bytes(b"a killed run's")  # livecam's own working file
    for attempt in range(2):  # a failed line does not make the file livecam's: refused again
        proc = annotate_cli(root, "--out-dir", out, "--model", graph)
        assert proc.returncode == 1, proc.stderr
        assert f"{2 - 2 * attempt} to annotate, {2 * attempt} done before, 1 refused" in proc.stderr
        assert (out / "cat.mp4").read_bytes() == b"my holiday"
        latest = latest_lines(out)
        assert {n: r["status"] for n, r in latest.items()} == {
            "cat.mp4": "failed", "coffee.avi": "done" if attempt == 0 else "skipped",
            "astronaut.mp4": "done" if attempt == 0 else "skipped"}
        assert "no manifest line says livecam wrote it" in latest["cat.mp4"]["error"]
        assert "--force" in latest["cat.mp4"]["error"]
    assert len(read_video(out / "day1/coffee.mp4")[0]) == 16  # the rest went on
    assert not (out / "day1/deep/.astronaut.partial.mp4").exists()  # the leftover was written over, then moved

    forced = annotate_cli(root, "--out-dir", out, "--model", graph, "--force")
    assert forced.returncode == 0, forced.stderr
    assert {n: r["status"] for n, r in latest_lines(out).items()} == {n: "done" for n in latest}
    assert len(read_video(out / "cat.mp4")[0]) == 12 and len(read_video(out / "day1/deep/astronaut.mp4")[0]) == 14


def test_planning_knows_which_files_are_livecams(tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "in", {"cat.mp4": ("chelsea", 2), "cup.mp4": ("coffee", 2)}, broken=False)
    out = (tmp_path / "out").resolve()
    out.mkdir()
    for name in ("cat.mp4", "cup.mp4"):
        (out / name).write_bytes(b"an older output")
    source = str((root / "cat.mp4").resolve())
    lines = [{"input": source, "output": str(out / "cat.mp4"), "status": "done"},  # livecam wrote it ...
             {"input": source, "output": str(out / "cat.mp4"), "status": "failed"},  # ... and a later run failed
             {"input": str((root / "cup.mp4").resolve()), "output": str(out / "cup.mp4"), "status": "failed"}]
    (out / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    planned = annotate.plan([str(root)], out, {}, describe=as_the_cli_says)
    assert [Path(j.output).name for j in planned.jobs] == ["cat.mp4"]  # livecam's: done again, replaced
    assert [(Path(j.output).name, "--force" in why) for j, why in planned.refused] == [("cup.mp4", True)]
    # in the library's own words, the setting by its parameter's name
    assert [why.endswith("or pass force to replace it") for _, why in annotate.plan([str(root)], out, {}).refused] == [
        True]
    assert [Path(j.output).name for j in annotate.plan([str(root)], out, {}, force=True).jobs] == ["cat.mp4", "cup.mp4"]
