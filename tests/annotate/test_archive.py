"""annotate_archive: an archive annotated in one call, saying what it does and how far it got; reruns resume."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from livecam.annotate.archive import ArchivePlan, Progress, Workers, annotate_archive
from livecam.engines.launch import EngineOptions
from livecam.errors import LivecamError


class Counted:
    def __init__(self) -> None:
        self.totals: list[int | None] = []
        self.frame_count = 0
        self.file_counts: list[tuple[int, int]] = []

    def frames(self, count: int) -> None:
        self.frame_count += count

    def files(self, done: int, total: int) -> None:
        self.file_counts.append((done, total))

    @contextlib.contextmanager
    def __call__(self, total: int | None) -> Iterator[Progress]:
        self.totals.append(total)
        yield self


def test_an_archive_in_one_call_and_a_rerun_that_resumes(cat_video: Path, lite0_graph: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(cat_video, clips / "a.mp4")
    out = tmp_path / "out"
    plans: list[ArchivePlan] = []
    progress = Counted()
    options = EngineOptions(model=str(lite0_graph))
    result = annotate_archive([str(clips)], out, options, progress=progress, describe=plans.append)
    assert (result.done, result.skipped, result.failed, result.interrupted) == (1, 0, [], False)
    assert result.manifest == out / "manifest.jsonl" and (out / "a.mp4").is_file()
    assert plans[0].engine is not None and plans[0].line == f"1 to annotate, 0 done before, into {out}"
    assert progress.totals == [24] and progress.frame_count == 24 and progress.file_counts == [(0, 1), (1, 1)]
    lines = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["done"]

    again = annotate_archive([str(clips)], out, options, describe=plans.append)
    assert (again.done, again.skipped, [r["status"] for r in again.records]) == (0, 1, ["skipped"])
    assert plans[1] == ArchivePlan(None, f"0 to annotate, 1 done before, into {out}")


def test_a_stop_before_the_work_leaves_no_output(cat_video: Path, lite0_graph: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    result = annotate_archive([str(cat_video)], tmp_path / "out", EngineOptions(model=str(lite0_graph)), stop=stop)
    assert result.interrupted and result.records == [] and not (tmp_path / "out" / "cat.mp4").exists()


def test_settings_that_do_not_go_together_are_refused_before_any_work(cat_video: Path, tmp_path: Path) -> None:
    with pytest.raises(LivecamError, match="gpus_per_worker goes with ray"):
        annotate_archive([str(cat_video)], tmp_path / "out", EngineOptions(), workers=Workers(gpus_per_worker=1))
    assert Workers().count == 1 and Workers(ray_address="local").count == 2 and Workers(jobs=3).count == 3
