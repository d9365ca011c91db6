"""livecam/smooth.py: the time-weighted average, the hysteresis and the scene cut, against hand-worked sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data

from livecam.errors import LivecamError
from livecam.smooth import (
    CUT_THRESHOLD,
    Hysteresis,
    Smoother,
    check_seconds,
    ema,
    ema_alpha,
    histogram,
    histogram_distance,
)


def test_alpha_is_one_minus_exp_of_minus_dt_over_tau():
    assert ema_alpha(0.1, 0.1) == pytest.approx(1 - math.exp(-1))
    assert ema_alpha(0.5, 0.25) == pytest.approx(1 - math.exp(-2))
    assert ema_alpha(0.0, 1.0) == 0.0
    assert ema_alpha(0.3, 0.0) == 1.0
    assert ema_alpha(math.inf, 2.0) == 1.0
    with pytest.raises(ValueError):
        ema_alpha(-0.1, 1.0)


def test_ema_by_hand():
    m = ema(None, np.array([0.0, 1.0]), 0.5)
    assert m.tolist() == [0.0, 1.0]
    m = ema(m, np.array([1.0, 0.0]), 0.5)
    assert m.tolist() == [0.5, 0.5]
    m = ema(m, np.array([1.0, 0.0]), 0.25)
    assert m.tolist() == [0.625, 0.375]


@pytest.mark.parametrize("fps", [10, 24, 60])
def test_the_same_time_constant_means_the_same_at_any_frame_rate(fps):
    """A map that steps from 0 to 1 at t=0 reaches 1 - exp(-t / tau) at time t, whatever the frame rate."""
    tau = 0.5
    smoother = Smoother(tau, fixed=True, cut_threshold=1.0)
    smoother.step(0.0, np.array([1.0, 0.0]), np.zeros((1, 2, 2)), [0])
    out = None
    for i in range(1, fps + 1):  # one second
        out = smoother.step(i / fps, np.array([1.0, 0.0]), np.ones((1, 2, 2)), [0])
    assert out is not None
    assert out.maps[0, 0, 0] == pytest.approx(1 - math.exp(-1.0 / tau), abs=1e-5)


def test_hysteresis_by_hand():
    """hold 0.5 s, frames 0.25 s apart: a new leader takes over on its third frame in the lead (0.5 s after it took
    it), and a challenger that gives up the lead starts again from zero."""
    h = Hysteresis(0.5)
    leaders = [1, 1, 2, 2, 2, 2, 1, 3, 1, 3, 3, 3]
    held = [h.step(leader, 0.25, [leader])[0] for leader in leaders]
    assert held == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3]


def test_hysteresis_waits_for_the_leaders_map():
    h = Hysteresis(0.0)
    assert h.step(4, 0.1, [4]) == (4, True)
    assert h.step(7, 0.1, [4]) == (4, False)  # 7 leads, but this frame has no map of it
    assert h.step(7, 0.1, [7, 4]) == (7, True)


def test_hold_zero_follows_the_leader():
    h = Hysteresis(0.0)
    assert [h.step(c, 0.1, [c])[0] for c in [1, 2, 1, 3]] == [1, 2, 1, 3]


def test_off_is_the_frame_as_explained():
    smoother = Smoother(0.0)
    rng = np.random.default_rng(0)
    for t in range(5):
        maps = rng.random((3, 4, 4), dtype=np.float32)
        probs = rng.dirichlet(np.ones(5))
        out = smoother.step(t * 0.1, probs, maps, [2, 0, 1])
        np.testing.assert_array_equal(out.maps, maps[:1])
        np.testing.assert_allclose(out.probs, probs, rtol=1e-6)
        assert out.classes == [2]


def test_the_held_class_keeps_its_average_when_its_map_is_missing():
    smoother = Smoother(1.0, cut_threshold=1.0)
    probs = np.array([0.6, 0.4])
    smoother.step(0.0, probs, np.full((1, 2, 2), 0.2, np.float32), [0])
    second = smoother.step(0.1, probs, np.full((1, 2, 2), 0.8, np.float32), [0])
    assert second.classes == [0]
    # class 1 leads this frame's raw output, so the map is of class 1: the held class 0 keeps its average
    third = smoother.step(0.2, np.array([0.45, 0.55]), np.full((1, 2, 2), 0.9, np.float32), [1])
    assert third.classes == [0]
    np.testing.assert_array_equal(third.maps, second.maps)


def test_a_new_explained_class_starts_its_own_average():
    smoother = Smoother(0.2, cut_threshold=1.0)
    smoother.step(0.0, np.array([0.9, 0.1]), np.zeros((1, 2, 2), np.float32), [0])
    out = None
    for i in range(1, 20):  # class 1 leads from now on, and after 0.2 s of it, it is explained
        out = smoother.step(i * 0.1, np.array([0.0, 1.0]), np.full((1, 2, 2), 0.7, np.float32), [1])
        if out.classes == [1]:
            break
    assert out is not None and out.classes == [1]
    np.testing.assert_array_equal(out.maps, np.full((1, 2, 2), 0.7, np.float32))  # no trace of class 0's map


def test_panels_average_each_class_on_its_own():
    smoother = Smoother(0.5, panels=True, cut_threshold=1.0)
    a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    smoother.step(0.0, np.array([0.5, 0.3, 0.2]), np.stack([a, b]), [0, 1])
    out = smoother.step(0.5, np.array([0.5, 0.3, 0.2]), np.stack([a, b]), [1, 0])  # the classes swapped
    alpha = 1 - math.exp(-1)
    assert out.classes == [1, 0]
    np.testing.assert_allclose(out.maps[0], 1 + alpha * (0 - 1), rtol=1e-6)  # class 1: from 1 towards 0
    np.testing.assert_allclose(out.maps[1], alpha * 1, rtol=1e-6)  # class 0: from 0 towards 1


def test_the_probabilities_are_averaged_in_time():
    smoother = Smoother(1.0, cut_threshold=1.0)
    smoother.step(0.0, np.array([1.0, 0.0]), np.zeros((1, 1, 1)), [0])
    out = smoother.step(1.0, np.array([0.0, 1.0]), np.zeros((1, 1, 1)), [1])
    alpha = 1 - math.exp(-1)
    np.testing.assert_allclose(out.probs, [1 - alpha, alpha], rtol=1e-6)
    assert out.classes == [0]  # 1 leads only from this frame on


def test_a_step_back_in_time_restarts():
    smoother = Smoother(10.0, fixed=True, cut_threshold=1.0)
    smoother.step(5.0, np.array([1.0]), np.zeros((1, 2, 2)), [0])
    out = smoother.step(0.0, np.array([1.0]), np.ones((1, 2, 2)), [0])
    assert out.cut
    np.testing.assert_array_equal(out.maps, np.ones((1, 2, 2)))


def test_a_scene_cut_restarts_and_a_steady_shot_does_not():
    cat, coffee = data.chelsea()[..., ::-1], data.coffee()[..., ::-1]
    assert histogram(cat).sum() == pytest.approx(1.0)
    assert histogram_distance(histogram(cat), histogram(cat)) == 0.0
    assert histogram_distance(histogram(cat), histogram(coffee)) > CUT_THRESHOLD
    shifted = np.roll(cat, 8, axis=1)  # the camera moved a little
    assert histogram_distance(histogram(cat), histogram(shifted)) < CUT_THRESHOLD
    smoother = Smoother(5.0, fixed=True)
    smoother.step(0.0, np.array([1.0]), np.zeros((1, 2, 2)), [0], cat)
    steady = smoother.step(0.1, np.array([1.0]), np.ones((1, 2, 2)), [0], shifted)
    assert not steady.cut and steady.maps.max() < 0.1
    after = smoother.step(0.2, np.array([1.0]), np.ones((1, 2, 2)), [0], coffee)
    assert after.cut
    np.testing.assert_array_equal(after.maps, np.ones((1, 2, 2)))


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_the_time_constant_is_checked(bad):
    with pytest.raises(LivecamError, match="--smooth|smooth"):
        check_seconds(bad)
    with pytest.raises(LivecamError):
        Smoother(0.5).seconds = bad
