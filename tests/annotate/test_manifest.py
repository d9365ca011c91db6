"""The manifest: a torn last line is reported once and the next line kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livecam import annotate


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
