"""The built-in demo clip: the same real photographs in motion every time, cached, remade when damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livecam.sources import demo, open_source
from tests.conftest import read_video


def test_demo_clip_is_deterministic_cached_and_real(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    first = list(demo.demo_frames())
    assert len(first) == demo.frame_count()
    assert all(np.array_equal(a, b) for a, b in zip(first, demo.demo_frames(), strict=True))
    assert first[0].shape == (demo.HEIGHT, demo.WIDTH, 3) and first[0].std() > 20  # a photograph, not flat
    # motion: consecutive frames differ, but not wildly
    diffs = [np.abs(a.astype(int) - b).mean() for a, b in zip(first[:47], first[1:48], strict=True)]
    assert min(diffs) > 0.1 and max(diffs) < 40
    path = demo.demo_clip_path()
    assert path.parent == tmp_path
    frames, fps = read_video(path)
    assert len(frames) == len(first) and fps == pytest.approx(demo.FPS)
    mtime = path.stat().st_mtime_ns
    assert demo.demo_clip_path() == path and path.stat().st_mtime_ns == mtime  # cached
    path.write_bytes(b"truncated")
    assert demo.demo_clip_path() == path and len(read_video(path)[0]) == len(first)  # remade
    with open_source("demo") as src:
        assert src.frame_count == len(first)
