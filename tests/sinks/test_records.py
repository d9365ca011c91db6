"""The per-frame JSONL log, the saved maps, and what a model failure does (--on-error), on a real engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from livecam.engines import launch
from livecam.cli import main
from livecam.errors import LivecamError
from livecam.pipeline import ModelError, run
from livecam.sinks.records import JsonlLog, MapsSaver
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.sinks import VideoFileSink
from livecam.sources import open_source
from livecam.types import Annotated, Frame, Label
from tests.conftest import SPLICE, cat_on_background, make_video, read_video, spliced_clip


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, lite0) -> Path:
    """Lite0 with Grad-CAM of its top 2 classes, as one ONNX file (the engine the CLI runs on a CPU)."""
    from livecam.export import export_explainer

    return export_explainer(lite0, tmp_path_factory.mktemp("graph") / "lite0-top2.onnx", topk=2)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory, chelsea_bgr: np.ndarray) -> Path:
    """300 frames of the cat wandering over grey: long enough to be interrupted mid-run."""
    cat = cv2.resize(chelsea_bgr, (150, 100), interpolation=cv2.INTER_AREA)
    frames = [cat_on_background(cat, (240, 320), (7 * (i % 24), 20 + 4 * (i % 24))) for i in range(300)]
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", frames, fps=25.0)


class Failing:
    """A real engine that raises ``error`` when a batch holds frame ``bad`` (and keeps each batch's readout)."""

    def __init__(self, engine: RuntimeEngine, bad: int | None, error: BaseException) -> None:
        self.engine, self.bad, self.error, self.calls = engine, bad, error, []  # bad None: every frame
        self.readouts: list[str | None] = []

    def process_batch(self, frames, readout=None):  # noqa: ANN001, ANN201 - the Engine protocol
        self.calls.append([f.index for f in frames])
        self.readouts.append(readout)
        if self.bad is None or any(f.index == self.bad for f in frames):
            raise self.error
        return self.engine.process_batch(frames, readout)


def _lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the last line is not whole"
    return [json.loads(line) for line in text.splitlines()]


def _run(video: Path, engine, tmp_path: Path, **kwargs):  # noqa: ANN001, ANN202
    out, log, maps = tmp_path / "out.avi", tmp_path / "log.jsonl", tmp_path / "maps"
    with open_source(str(video)) as src, VideoFileSink(out, fps=src.fps) as rec, JsonlLog(log) as jl, \
            MapsSaver(maps) as ms:
        try:
            report = run(src, engine, [rec, jl, ms], **kwargs)
        except ModelError as exc:
            report = exc
    return report, read_video(out)[0] if out.exists() else [], _lines(log), maps


class Spy:
    """An engine that keeps what it hands on, in ``seen``."""

    def __init__(self, engine: RuntimeEngine, seen: list[Annotated]) -> None:
        self.engine, self.seen = engine, seen

    def process_batch(self, frames: list[Frame], readout: str | None = None) -> list[Annotated]:
        out = self.engine.process_batch(frames, readout)
        self.seen.extend(out)
        return out


def test_the_log_and_maps_hold_every_frame_as_the_engine_saw_it(graph: Path, cat_video: Path, tmp_path: Path) -> None:
    seen: list[Annotated] = []
    report, recorded, lines, maps = _run(cat_video, Spy(RuntimeEngine(graph, "cpu", topk=2), seen), tmp_path, batch=3)
    assert report.frames == len(recorded) == len(lines) == len(seen) == 24
    assert [line["frame"] for line in lines] == list(range(24))
    for line, annotated in zip(lines, seen, strict=True):
        assert set(line) == {"frame", "time", "labels", "ms", "latency_ms", "dropped"}
        assert line["time"] == pytest.approx(annotated.frame.timestamp, abs=1e-6)
        assert line["time"] == pytest.approx(line["frame"] / 12.0, abs=1e-3)  # the clip is 12 fps
        assert [(x["index"], x["name"], x["explained"]) for x in line["labels"]] == \
            [(x.index, x.name, x.explained) for x in annotated.labels]
        assert [x["score"] for x in line["labels"]] == pytest.approx([x.score for x in annotated.labels], abs=1e-6)
        assert set(line["ms"]) == {"decode", "preprocess", "explain", "render"}
        assert line["ms"]["explain"] == pytest.approx(annotated.timings["explain"] * 1000, abs=1e-3)
        assert all(v > 0 for v in line["ms"].values())
        assert line["latency_ms"] >= line["ms"]["explain"]  # the latency spans the explanation
        assert line["dropped"] == 0  # a file: nothing is dropped
        saved = np.load(maps / f"frame_{line['frame']:06d}.npz")
        assert saved["maps"].dtype == np.float32 and saved["maps"].shape == (1, 7, 7)
        assert np.array_equal(saved["maps"], annotated.maps)
        assert 0.0 <= saved["maps"].min() and saved["maps"].max() <= 1.0
        assert saved["map_classes"].tolist() == annotated.map_classes
        assert saved["classes"].tolist() == [x["index"] for x in line["labels"]]  # the log's classes
        assert saved["scores"] == pytest.approx([x["score"] for x in line["labels"]], abs=1e-6)
        assert int(saved["frame"]) == line["frame"]
        assert float(saved["timestamp"]) == pytest.approx(line["time"], abs=1e-6)
    assert sorted(p.name for p in maps.iterdir()) == [f"frame_{i:06d}.npz" for i in range(24)]  # no partial files
    cats = sum(line["labels"][0]["name"] in {"tabby", "tiger cat", "Egyptian cat"} for line in lines)
    assert cats >= 20, [line["labels"][0]["name"] for line in lines]  # the log says what the model saw


def test_without_smoothing_a_line_and_a_maps_file_are_as_before(tmp_path: Path) -> None:
    frame = Frame(np.zeros((8, 8, 3), np.uint8), 3, 0.25)
    maps = np.full((1, 7, 7), 0.5, np.float32)
    out = Annotated(frame.image, None, frame, {"explain": 0.01}, 0, [Label("tabby", 0.7, True, 281)], maps, [281])
    assert out.raw_maps is out.maps and out.raw_labels is out.labels and not out.smoothed
    with JsonlLog(tmp_path / "log.jsonl") as log, MapsSaver(tmp_path / "maps") as saver:
        log.write(out)
        saver.write(out)
    line = json.loads((tmp_path / "log.jsonl").read_text())
    assert set(line) == {"frame", "time", "labels", "ms", "latency_ms", "dropped"}
    saved = np.load(tmp_path / "maps" / "frame_000003.npz")
    assert set(saved.files) == {"maps", "map_classes", "classes", "scores", "frame", "timestamp"}


def test_smoothed_frames_log_the_drawn_labels_and_the_raw_top_class(graph: Path, tmp_path: Path) -> None:
    """Lite0's top 2 maps a frame, smoothed over two spliced shots: the log and the maps hold what was drawn, and
    the frame's own beside it."""
    seen: list[Annotated] = []
    log, maps = tmp_path / "log.jsonl", tmp_path / "maps"
    with JsonlLog(log) as jl, MapsSaver(maps) as ms:
        report = run(spliced_clip(), Spy(RuntimeEngine(graph, "cpu", topk=2, smooth=0.5), seen), [jl, ms], batch=2)
    assert report.frames == len(seen) == 2 * SPLICE
    lines = _lines(log)
    for line, annotated in zip(lines, seen, strict=True):
        assert annotated.smoothed
        assert [(x["index"], x["name"], x["explained"]) for x in line["labels"]] == \
            [(x.index, x.name, x.explained) for x in annotated.labels]
        assert [x["score"] for x in line["labels"]] == pytest.approx([x.score for x in annotated.labels], abs=1e-6)
        top = annotated.raw_labels[0]
        assert line["raw"] == {"index": top.index, "name": top.name, "score": pytest.approx(top.score, abs=1e-6)}
        assert top.index == int(annotated.explanation.classes[annotated.index, 0])  # the frame's own top class
        saved = np.load(maps / f"frame_{line['frame']:06d}.npz")
        assert np.array_equal(saved["maps"], annotated.maps) and np.array_equal(saved["raw_maps"], annotated.raw_maps)
        assert saved["map_classes"].tolist() == annotated.map_classes
        assert saved["raw_map_classes"].tolist() == annotated.raw_map_classes
        assert saved["classes"].tolist() == [x["index"] for x in line["labels"]]
        same = np.array_equal(saved["maps"], saved["raw_maps"])
        assert same == (line["frame"] % SPLICE == 0)  # the first frame of each shot is its own; the rest smoothed
    # the smoothed scores are not the frame's own: the log tells them apart
    assert any(abs(line["labels"][0]["score"] - line["raw"]["score"]) > 1e-3 for line in lines)


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), MemoryError()])
def test_on_error_stop_records_the_frames_before_and_names_the_frame(graph: Path, cat_video: Path, tmp_path: Path,
                                                                     error: BaseException) -> None:
    engine = Failing(RuntimeEngine(graph, "cpu", topk=2), bad=7, error=error)
    result, recorded, lines, maps = _run(cat_video, engine, tmp_path)
    assert isinstance(result, ModelError)
    message = str(result)
    assert "\n" not in message
    name = type(error).__name__
    assert message.startswith(f"the model failed on frame 7 ({7 / 12:.2f} s): {name}"), message
    if str(error):
        assert "CUDA out of memory" in message
    assert result.report.frames == 7 and result.report.error == message
    assert len(recorded) == 7
    assert [line["frame"] for line in lines] == list(range(8))
    assert "error" not in lines[6] and lines[7]["error"] == message and "labels" not in lines[7]
    assert sorted(p.name for p in maps.iterdir()) == [f"frame_{i:06d}.npz" for i in range(7)]
    assert engine.calls[-1] == [7]  # nothing after the failure was explained


def test_on_error_skip_goes_on_and_the_log_marks_the_frames(graph: Path, cat_video: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    engine = Failing(RuntimeEngine(graph, "cpu", topk=2), bad=9, error=RuntimeError("out of memory"))
    with caplog.at_level("WARNING", logger="livecam"):
        report, recorded, lines, maps = _run(cat_video, engine, tmp_path, batch=4, on_error="skip")
    assert report.frames == 20 and report.skipped == 4 and report.error is None
    assert len(recorded) == 20  # frames 8-11 are not in the recording
    assert [line["frame"] for line in lines] == list(range(24))
    failed = [line["frame"] for line in lines if "error" in line]
    assert failed == [8, 9, 10, 11]
    assert lines[8]["error"] == f"the model failed on frames 8-11 ({8 / 12:.2f}-{11 / 12:.2f} s): " \
                                "RuntimeError: out of memory"
    assert sorted(int(p.stem[6:]) for p in maps.iterdir()) == [i for i in range(24) if i not in failed]
    warnings = [r.getMessage() for r in caplog.records if "model failed" in r.getMessage()]
    assert warnings == [lines[8]["error"] + "; skipped"]  # one line per failure
    # what was recorded is what the engine drew, frame for frame: the frames after the gap follow it
    direct = RuntimeEngine(graph, "cpu", topk=2)
    with open_source(str(cat_video)) as src:
        frames = list(src)
    expected = [a.image for call, readout in zip(engine.calls, engine.readouts, strict=True) if call[0] not in failed
                for a in direct.process_batch([frames[i] for i in call], readout)]  # the same speed readout drawn
    assert max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(recorded, expected,
                                                                                   strict=True)) < 6


@pytest.mark.parametrize("error", [LivecamError("the frame has the wrong size"), KeyboardInterrupt()])
def test_stop_signals_from_the_engine_are_not_swallowed(graph: Path, cat_video: Path, tmp_path: Path,
                                                        error: BaseException) -> None:
    engine = Failing(RuntimeEngine(graph, "cpu", topk=2), bad=3, error=error)
    with open_source(str(cat_video)) as src, JsonlLog(tmp_path / "log.jsonl") as log:
        if isinstance(error, LivecamError):
            with pytest.raises(LivecamError, match="wrong size"):
                run(src, engine, [log], on_error="skip")
        else:
            report = run(src, engine, [log], on_error="skip")
            assert report.interrupted and report.skipped == 0 and report.frames == 3
    assert [line["frame"] for line in _lines(tmp_path / "log.jsonl")] == [0, 1, 2]


def test_refusals_before_the_model_loads(tmp_path: Path, cat_video: Path) -> None:
    existing = tmp_path / "old.jsonl"
    existing.write_text("keep me\n")
    (tmp_path / "maps").mkdir()
    np.savez(tmp_path / "maps" / "frame_000000.npz", maps=np.zeros(1))
    cases = [
        (["--log", str(existing)], "already exists; pass --overwrite"),
        (["--log", str(tmp_path / "nowhere" / "log.jsonl")], "does not exist"),
        (["--log", str(tmp_path)], "is a folder"),
        (["--save-maps", str(tmp_path / "maps")], "already holds saved maps"),
        (["--save-maps", str(existing)], "is a file"),
        (["--on-error", "retry"], "--on-error"),
        (["--log", str(tmp_path / "o.mp4"), "--output", str(tmp_path / "o.mp4")], "is also the --output"),
    ]
    for args, fragment in cases:
        result = CliRunner().invoke(main, ["--source", str(cat_video), "--no-show", "--model", "missing.onnx", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("livecam: error: ") and fragment in lines[0], lines
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "o.mp4").exists()


def test_help_explains_the_options() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--log FILE.jsonl", "--save-maps DIR", "--on-error [stop|skip]"):
        assert option in result.output, option


def test_a_full_disk_is_one_line_naming_the_log(graph: Path, cat_video: Path, tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    log = tmp_path / "log.jsonl"
    log.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    out = tmp_path / "out.avi"
    result = subprocess.run([sys.executable, "-m", "livecam", "--source", str(cat_video), "--model", str(graph),
                             "--no-show", "--output", str(out), "--log", str(log), "--overwrite"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # not bad input: the run could not go on
    lines = [line for line in result.stderr.splitlines() if line.startswith("livecam: error")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write the log {log}" in lines[0] and "No space left on device" in lines[0], lines[0]


def test_the_cli_stops_on_a_model_failure_with_exit_code_1(graph: Path, cat_video: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = launch.open_engine

    def failing(options):  # noqa: ANN001, ANN202
        launched = real(options)
        launched.engine = Failing(launched.engine, bad=5, error=RuntimeError("CUDA out of memory"))
        launched.engine.close = lambda: None
        return launched

    monkeypatch.setattr(launch, "open_engine", failing)
    log, out = tmp_path / "log.jsonl", tmp_path / "out.avi"
    args = ["--source", str(cat_video), "--model", str(graph), "--no-show", "--output", str(out), "--log", str(log)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("livecam: error")]
    assert error == [f"livecam: error: the model failed on frame 5 ({5 / 12:.2f} s): RuntimeError: CUDA out of "
                     "memory"], result.stderr
    assert "livecam: 5 frames in" in result.stdout
    assert len(read_video(out)[0]) == 5 and len(_lines(log)) == 6
    result = CliRunner().invoke(main, [*args, "--overwrite", "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    assert "23 frames in" in result.stdout and "1 skipped" in result.stdout
    assert len(read_video(out)[0]) == 23 and [line["frame"] for line in _lines(log)] == list(range(24))


def test_skipping_every_frame_is_a_failed_run(graph: Path, cat_video: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = launch.open_engine

    def failing(options):  # noqa: ANN001, ANN202
        launched = real(options)
        launched.engine = Failing(launched.engine, bad=None, error=RuntimeError("CUDA out of memory"))
        launched.engine.close = lambda: None
        return launched

    monkeypatch.setattr(launch, "open_engine", failing)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["--source", str(cat_video), "--model", str(graph), "--no-show", "--output",
                                       str(out), "--on-error", "skip"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("livecam: error")]
    assert errors == ["livecam: error: the model failed on every frame (24 frames skipped), so nothing was "
                      "processed; see the warnings above"], result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_no_processed_frame_is_lost_when_stopped(graph: Path, long_video: Path, tmp_path: Path, sig: int) -> None:
    log, out = tmp_path / "log.jsonl", tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "livecam", "--source", str(long_video), "--model", str(graph),
                             "--no-show", "--output", str(out), "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count("\n") >= 5:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    lines = _lines(log)
    frames, _ = read_video(out)  # counted by decoding
    assert 5 <= len(lines) < 300, len(lines)
    assert [line["frame"] for line in lines] == list(range(len(lines)))
    assert len(frames) == len(lines), (len(frames), len(lines))
    assert f"{len(lines)} frames in" in stdout and "(interrupted)" in stdout


def test_a_live_source_logs_the_frames_dropped_before_each(graph: Path, cat_video: Path, tmp_path: Path) -> None:
    with open_source(str(cat_video)) as src:
        frames = list(src)

    def camera():  # noqa: ANN202 - a "camera" far faster than the engine: most frames are replaced unread
        for i in range(120):
            frame = frames[i % len(frames)]
            yield Frame(frame.image, i, i / 500)
            time.sleep(0.002)

    log = tmp_path / "log.jsonl"
    with JsonlLog(log) as sink:
        report = run(camera(), RuntimeEngine(graph, "cpu", topk=2), [sink], live=True)
    lines = _lines(log)
    assert report.dropped > 0 and len(lines) == report.frames and report.frames + report.dropped == 120
    # the i-th frame taken was frame k: the k - i frames before it that were never taken were dropped
    assert [line["dropped"] for line in lines] == [line["frame"] - i for i, line in enumerate(lines)]
    assert lines[-1]["frame"] == 119 and lines[-1]["dropped"] == report.dropped
