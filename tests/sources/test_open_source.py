"""open_source: what the source is named reads as a camera, a file, a URL or the demo, or says why it cannot."""

from __future__ import annotations

import pytest

from livecam.errors import LivecamError
from livecam.sources import open_source


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no/such/video.mp4", "does not exist"),
        ("99", "camera 99 could not be opened"),
        ("", "^source is empty"),
    ],
)
def test_bad_sources(spec: str, message: str) -> None:
    with pytest.raises(LivecamError, match=message):
        open_source(spec)
