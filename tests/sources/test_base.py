"""What every source shares: ``with`` keeps the source and closes it, OpenCV kept quiet, an open Ctrl-C can end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from livecam.errors import LivecamError
from livecam.sources import spread_frames
from livecam.sources.base import Source, interruptible, quiet_opencv
from livecam.types import Frame


class Counting(Source):
    """Ten frames whose images are their indices; counts how often it was closed."""

    description = "ten frames"
    frame_count = 10

    def __init__(self) -> None:
        self.closed = 0

    def __iter__(self) -> Iterator[Frame]:
        for i in range(10):
            yield Frame(np.full((2, 2, 3), i, np.uint8), i, i / 10)

    def close(self) -> None:
        self.closed += 1


def test_with_keeps_the_source_and_closes_it_also_when_the_block_raises() -> None:
    with Counting() as source:
        assert isinstance(source, Counting) and source.closed == 0
    assert source.closed == 1
    with pytest.raises(ValueError), Counting() as raising:
        raise ValueError("in the block")
    assert raising.closed == 1


def test_a_size_set_is_kept_and_one_not_known_is_none() -> None:
    source = Counting()
    assert source.size is None
    source.size = (4, 3)
    assert source.size == (4, 3)


def test_quiet_opencv_nests_and_puts_the_level_back() -> None:
    logging.getLogger("livecam").setLevel(logging.WARNING)
    before = cv2.utils.logging.getLogLevel()
    with quiet_opencv():
        with quiet_opencv():
            assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    assert cv2.utils.logging.getLogLevel() == before


def test_interruptible_gives_the_result_or_the_error_of_its_call() -> None:
    assert threading.current_thread() is threading.main_thread()
    assert interruptible(lambda a, b: a + b, 2, 3) == 5

    def refuse() -> None:
        raise LivecamError("no such source")

    with pytest.raises(LivecamError, match="no such source"):
        interruptible(refuse)


def test_spread_frames_takes_them_evenly_over_a_known_length() -> None:
    assert [int(image[0, 0, 0]) for image in spread_frames(Counting(), 4)] == [0, 3, 6, 9]
    assert len(spread_frames(Counting(), 20)) == 10
