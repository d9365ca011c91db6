"""Long files in parts (livecam annotate --chunk-seconds): cut at keyframes, each part decoded on its own,
the parts joined without re-encoding; the frame index drawn into every frame comes out in order."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from livecam import annotate
from livecam.annotate.parts import Span, cuts, join, plan_spans, spans_of
from livecam.errors import LivecamError
from livecam.sinks.encode import VideoEncoder
from tests.conftest import ENCODED_FPS as FPS
from tests.conftest import annotate_cli, draw_index, encode_video, index_video, moving_photos, read_index, read_video


SIZE = (320, 240)


def _decode(path: Path) -> list[np.ndarray]:
    return read_video(path)[0]  # OpenCV: what livecam --source reads


def _times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(container.streams.video[0])]


def test_cuts_fall_on_keyframes_and_spans_hold_each_frame_once() -> None:
    # presentation times in decode order, B-frames reordered: keyframes (I) at 0, 4, 8, 12
    stamps = [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 13]
    keyframes = [0, 4, 8, 12]
    assert cuts(stamps, keyframes, 3) == [0, 4, 8, 12]  # the first keyframe at least 3 after the last cut
    assert cuts(stamps, keyframes, 5) == [0, 8]
    assert cuts(stamps, keyframes, 20) == [0]  # nothing to cut at
    assert cuts(stamps[1:], keyframes[1:], 3) == [1, 4, 8, 12]  # a file that does not open on a keyframe
    spans = spans_of(stamps, [0, 8], Fraction(1, 2))
    assert spans == [Span(None, 8, 0, 8, 0.0), Span(8, None, 8, 6, 4.0)]
    assert sum(span.frames for span in spans) == len(stamps)
    assert cuts([], [], 3) == []


def test_short_unreadable_and_uncuttable_files_are_not_cut(tmp_path: Path) -> None:
    short = encode_video(tmp_path / "short.mp4", moving_photos(20))
    assert plan_spans(short, 1.0) == []
    one_gop = encode_video(tmp_path / "one-gop.mp4", moving_photos(60),
                           options={"g": "1000", "x264-params": "scenecut=0"})
    assert plan_spans(one_gop, 1.0) == []  # 2.4 s but a single keyframe
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 4096)
    assert plan_spans(broken, 1.0) == []
    assert plan_spans(tmp_path / "missing.mp4", 1.0) == []


@pytest.mark.parametrize("codec", ["h264", "hevc", "mp4v"])
def test_join_copies_the_parts_packets_one_after_another(tmp_path: Path, codec: str) -> None:
    images = moving_photos(75)
    parts = []
    for i, chunk in enumerate((images[:30], images[30:55], images[55:])):
        encoder = VideoEncoder(tmp_path / f"part{i}.mp4", SIZE, FPS, codec)
        for image in chunk:
            encoder.write(image)
        encoder.close()
        parts.append(encoder.path)
    target = tmp_path / "joined.mp4"
    assert join(parts, target) == 75
    joined = _decode(target)
    expected = [frame for part in parts for frame in _decode(part)]
    assert len(joined) == 75 and all(np.array_equal(a, b) for a, b in zip(joined, expected, strict=True))
    assert _times(target) == pytest.approx([i / FPS for i in range(75)], abs=1e-6)
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.name == {"mp4v": "mpeg4"}.get(codec, codec)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["joined.mp4", "part0.mp4", "part1.mp4", "part2.mp4"]

    other = VideoEncoder(tmp_path / "other.mp4", (160, 120), FPS, codec)
    other.write(cv2.resize(images[0], (160, 120)))
    other.close()
    target.unlink()
    with pytest.raises(LivecamError, match="cannot be joined"):
        join([parts[0], other.path], target)
    assert not target.exists() and not list(tmp_path.glob(".*"))  # nothing half-written left


def test_the_index_drawn_into_a_frame_reads_back_through_the_heatmap(tmp_path: Path) -> None:
    frames = [draw_index(image, i) for i, image in enumerate(moving_photos(8))]
    assert [read_index(f) for f in frames] == list(range(8))
    rng = np.random.default_rng(1)
    heat = cv2.resize(rng.integers(0, 255, (7, 7, 3), dtype=np.uint8), SIZE, interpolation=cv2.INTER_LINEAR)
    assert [read_index(cv2.addWeighted(f, 0.8, heat, 0.2, 0)) for f in frames] == list(range(8))
    assert read_index(draw_index(frames[0], 1000)) == 1000


def test_a_long_file_in_parts_keeps_every_frame_in_order(lite0_graph: Path, tmp_path: Path) -> None:
    count = 260  # 10.4 s
    (tmp_path / "in").mkdir()
    source = index_video(tmp_path / "in" / "long.mp4", count)
    common = ("--model", lite0_graph, "--alpha", "0.2")
    parts = annotate_cli(source, "--out-dir", tmp_path / "parts", "--chunk-seconds", "2", "--jobs", "2", *common)
    assert parts.returncode == 0, parts.stdout + parts.stderr
    assert "in 5 parts" in parts.stderr
    whole = annotate_cli(source, "--out-dir", tmp_path / "whole", *common)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["long.mp4", "manifest.jsonl"]  # no part left

    output = tmp_path / "parts" / "long.mp4"
    frames = _decode(output)
    assert [read_index(f) for f in frames] == list(range(count))  # every frame, once, in order
    assert _times(output) == pytest.approx([i / FPS for i in range(count)], abs=1e-6)
    reference = _decode(tmp_path / "whole" / "long.mp4")
    assert len(reference) == count

    def difference(i: int, j: int) -> float:
        return float(np.abs(frames[i].astype(np.int16) - reference[j]).mean())

    # the same annotation, but for the encoder's noise (its keyframes fall elsewhere): each frame is nearer its
    # counterpart in the file annotated whole than that file's frames before and after it
    for i in range(count):
        assert difference(i, i) < 6.0
        assert all(difference(i, i) < difference(i, j) for j in (i - 1, i + 1) if 0 <= j < count)

    record = json.loads((tmp_path / "parts" / "manifest.jsonl").read_text())
    single = json.loads((tmp_path / "whole" / "manifest.jsonl").read_text())
    assert record["status"] == "done" and record["chunks"] == 5 and single["chunks"] == 1
    assert record["frames"] == record["source_frames"] == single["frames"] == count
    assert record["top_classes"] == single["top_classes"]
    assert record["fps"] > 0 and record["seconds"] > 0 and "part" not in record

    rerun = annotate_cli(source, "--out-dir", tmp_path / "parts", "--chunk-seconds", "2", "--jobs", "2", *common)
    assert rerun.returncode == 0 and json.loads(
        (tmp_path / "parts" / "manifest.jsonl").read_text().splitlines()[-1])["status"] == "skipped"


def test_a_failed_or_missing_part_leaves_no_output_and_no_part_file(tmp_path: Path) -> None:
    source = encode_video(tmp_path / "long.mp4", moving_photos(100),
                          options={"g": str(FPS), "x264-params": "scenecut=0"})
    out = tmp_path / "out"
    out.mkdir()
    job = annotate.Job(str(source), str(out / "long.mp4"), source.stat().st_size, source.stat().st_mtime_ns)
    results: list[dict] = []
    chunker = annotate.Chunker([job, annotate.Job(str(tmp_path / "b.mp4"), str(out / "b.mp4"), 1, 1)], 1.0, {},
                               results.append)
    parts = [j for j in chunker.work if j.input == job.input]
    assert len(parts) == 4 and chunker.split == 1 and [j.part for j in parts] == [0, 1, 2, 3]
    assert all(Path(j.output).parent == out and Path(j.output).name.startswith(".long.part") for j in parts)

    for j in parts:
        Path(j.output).write_bytes(b"a part")
    chunker.take({"input": str(tmp_path / "b.mp4"), "status": "done"})  # a file done whole passes at once
    assert results == [{"input": str(tmp_path / "b.mp4"), "status": "done"}]
    for j in parts:
        ok = j.part != 2
        chunker.take({"input": job.input, "part": j.part, "status": "done" if ok else "failed", "frames": 25,
                      "error": None if ok else "cannot decode", "class_counts": {"tabby": 25}, "started_at": 0.0})
    record = results[-1]
    assert record["status"] == "failed" and record["error"] == "the part from 2.0 s: cannot decode"
    assert record["frames"] == 100 and record["chunks"] == 4 and record["top_classes"] == [
        {"name": "tabby", "count": 100}]
    assert sorted(p.name for p in out.iterdir()) == []  # neither the parts nor an output

    chunker = annotate.Chunker([job], 1.0, {}, results.append)
    for j in chunker.work:
        Path(j.output).write_bytes(b"a part")
        Path(j.output).with_name(f".{Path(j.output).stem}.partial.mp4").write_bytes(b"half a part")
    chunker.take({"input": job.input, "part": 0, "status": "done", "frames": 25})
    chunker.close()  # stopped with three parts missing
    assert results[-1]["status"] == "interrupted" and sorted(p.name for p in out.iterdir()) == []
