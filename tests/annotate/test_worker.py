"""The per-file worker: a bad file is a failed line, never an exception, and its error reads as the caller says;
a worker process's errors keep their settings marked until the parent renders them."""

from __future__ import annotations

from pathlib import Path

from livecam.annotate.job import Job
from livecam.annotate.worker import FileWorker, marked, rendered
from livecam.engines.launch import EngineOptions
from livecam.errors import LivecamError, option
from tests.conftest import as_the_cli_says


def test_a_bad_file_is_a_failed_line_in_the_callers_words(lite0_graph: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 4096)
    out = tmp_path / "out" / "broken.mp4"
    job = Job(str(broken), str(out), 4096, broken.stat().st_mtime_ns)
    with FileWorker(EngineOptions(model=str(lite0_graph), threads=1), describe=lambda exc: f"[{exc}]") as worker:
        record = worker.run(job)
    assert record["status"] == "failed" and record["frames"] == 0 and record["input"] == str(broken)
    assert record["error"] is not None and record["error"].startswith("[") and "could not read" in record["error"]
    assert record["finished"] is not None and not out.exists() and "part" not in record


def test_a_worker_process_error_is_rendered_by_the_parent() -> None:
    exc = LivecamError(f"{Path('a.mp4')}: annotate it without {option('chunk_seconds')}")
    text = marked(exc)  # what a worker process writes: pickles, and keeps the setting marked
    assert str(LivecamError(text)) == str(exc) == "a.mp4: annotate it without chunk_seconds"
    line = {"error": text}
    assert rendered(line, as_the_cli_says)["error"] == "a.mp4: annotate it without --chunk-seconds"
    assert rendered({"error": marked(exc)}, str)["error"] == "a.mp4: annotate it without chunk_seconds"
    assert marked(ValueError("not livecam's")) == "not livecam's"
    assert rendered({"error": None}, as_the_cli_says)["error"] is None
