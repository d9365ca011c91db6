"""A span of a file decoded on its own (ClipSource): every frame once, with the pixels and times of the whole file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livecam.annotate.parts import plan_spans
from livecam.sources.clip import ClipSource
from tests.conftest import ENCODED_FPS as FPS
from tests.conftest import encode_video, moving_photos, read_video


def _decode(path: Path) -> list[np.ndarray]:
    return read_video(path)[0]  # OpenCV: what livecam --source reads


@pytest.mark.parametrize("name,codec,options", [
    ("bframes.mp4", "libx264", {"bf": "3", "g": "25"}),
    ("open-gop.mkv", "libx264", {"bf": "3", "g": "25", "x264-params": "open-gop=1"}),
    ("camera.avi", "mjpeg", None),
])
def test_the_spans_give_every_frame_once_as_the_whole_file_does(tmp_path: Path, name: str, codec: str,
                                                                options: dict | None) -> None:
    path = encode_video(tmp_path / name, moving_photos(130), codec, options)
    whole = _decode(path)
    spans = plan_spans(path, 1.5)
    assert len(spans) >= 3 and spans[0].start is None and spans[-1].end is None
    assert [s.first_frame for s in spans[1:]] == list(np.cumsum([s.frames for s in spans])[:-1])
    frames = []
    for span in spans:
        with ClipSource(path, span) as source:
            assert source.fps == FPS and source.frame_count == span.frames
            got = list(source)
        assert len(got) == span.frames
        frames.extend(got)
    assert [f.index for f in frames] == list(range(len(whole))) == list(range(130))
    assert [f.timestamp for f in frames] == [i / FPS for i in range(130)]
    assert all(np.array_equal(f.image, w) for f, w in zip(frames, whole, strict=True))  # the same pixels
