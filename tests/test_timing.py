"""Paced playback's clock (livecam.timing.pace_wait, PlayClock), against waits worked out by hand."""

from __future__ import annotations

import pytest

from livecam.timing import PlayClock, pace_wait


def test_the_wait_is_what_remains_until_the_frame_is_due() -> None:
    # time 0 of the source is at 100.0 on the clock; frame 12 at 24 fps is at 0.5 s
    assert pace_wait(0.5, 100.0, 100.2) == pytest.approx(0.3)
    assert pace_wait(0.5, 100.0, 100.0) == pytest.approx(0.5)
    assert pace_wait(0.5, 100.0, 100.5) == 0.0  # due now
    assert pace_wait(0.5, 100.0, 100.7) == 0.0  # late: at once, never a negative wait
    assert pace_wait(12.25, 3.0, 10.0) == pytest.approx(5.25)  # a source that starts later (timestamp 12.25)


def test_the_clock_is_anchored_at_the_first_frame_and_slow_frames_delay_none_after_them() -> None:
    clock = PlayClock(late=0.25)
    assert clock.wait(0.0, 10.0) == 0.0 and clock.start == 10.0  # the first frame shows at once
    assert clock.wait(1 / 24, 10.01) == pytest.approx(10.0 + 1 / 24 - 10.01)
    assert clock.wait(2 / 24, 10.2) == 0.0  # a slow frame: 0.117 s late, at once ...
    assert clock.wait(3 / 24, 10.21) == 0.0
    assert clock.start == 10.0  # ... and the clock stays: no delay accumulates
    assert clock.wait(6 / 24, 10.22) == pytest.approx(0.03)  # back on time: 10.25 is frame 6's time


def test_a_stall_re_anchors_the_clock_instead_of_a_burst_to_catch_up() -> None:
    clock = PlayClock(late=0.25)
    clock.wait(0.0, 10.0)
    assert clock.wait(0.5, 11.0) == 0.0 and clock.start == pytest.approx(10.5)  # 0.5 s late: anchored at itself
    assert clock.wait(0.75, 11.1) == pytest.approx(0.15)  # the next frame keeps its distance from this one
    assert clock.wait(1.0, 11.3) == pytest.approx(0.2)


def test_a_reset_anchors_the_clock_at_the_next_frame_as_a_pause_would() -> None:
    clock = PlayClock()
    clock.wait(0.0, 0.0)
    clock.wait(1.0, 1.0)
    clock.reset()  # paused at 1.0 s of the source, resumed at 20.0 on the clock
    assert clock.wait(1.0 + 1 / 24, 20.0) == 0.0 and clock.start == pytest.approx(19.0 - 1 / 24)
    assert clock.wait(1.5, 20.2) == pytest.approx(19.0 - 1 / 24 + 1.5 - 20.2)
