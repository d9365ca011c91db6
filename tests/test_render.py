"""Colour maps, blending and labels, in uint8."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livecam.errors import LivecamError
from livecam.render import COLORMAPS, Annotator, Label, blend, cam_to_uint8, heatmap


def test_cam_to_uint8_rounds_clips_and_zeroes_nan() -> None:
    cam = np.array([[0.0, 0.5, 1.0], [np.nan, -0.2, 1.7]], np.float32)
    assert cam_to_uint8(cam).tolist() == [[0, 128, 255], [0, 0, 255]]


def test_heatmap_is_the_colour_map_lookup_at_the_frame_size() -> None:
    cam = np.array([[0.0, 1.0]], np.float32)
    heat = heatmap(cam, (2, 1), "jet")
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0]
    assert heat.shape == (1, 2, 3) and heat.dtype == np.uint8
    assert heat[0, 0].tolist() == lut[0].tolist() and heat[0, 1].tolist() == lut[255].tolist()
    big = heatmap(np.random.default_rng(0).random((7, 7)), (640, 360), "turbo")
    assert big.shape == (360, 640, 3)


def test_blend_is_the_weighted_sum() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    heat = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = 0.7 * frame.astype(np.float64) + 0.3 * heat
    assert np.abs(blend(frame, heat, 0.3).astype(np.float64) - expected).max() <= 1.0


def test_annotate_draws_over_a_copy() -> None:
    frame = np.full((360, 640, 3), 100, np.uint8)
    before = frame.copy()
    cam = np.zeros((7, 7), np.float32)
    cam[3, 3] = 1.0
    out = Annotator("jet", 0.5).annotate(frame, cam, [Label("tabby", 0.61, True), Label("tiger cat", 0.2)], "30.0 FPS")
    assert np.array_equal(frame, before)
    assert out.shape == frame.shape and out.dtype == np.uint8
    # the hot centre is redder than the cold corner region (away from the text boxes)
    assert out[180, 320, 2] > out[180, 600, 2] + 60
    # the label box is darkened with white text in it
    assert out[5:40, 5:150].max() == 255


def test_label_text() -> None:
    assert Label("espresso", 0.8612, True).text() == "> espresso 86.1%"
    assert Label("cup", 0.1).text() == "  cup 10.0%"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(LivecamError, match="unknown colour map"):
        Annotator("rainbow")
    with pytest.raises(LivecamError, match="between 0 and 1"):
        Annotator("jet", 1.5)


def test_cli_choices_match_the_library() -> None:
    from livecam import cli
    from livecam.cams import METHODS

    assert set(cli.METHOD_NAMES) == set(METHODS)
    assert set(cli.COLORMAP_NAMES) == set(COLORMAPS)


def test_softmax_and_top_labels_in_numpy() -> None:
    import torch

    from livecam.render import softmax, top_labels

    logits = np.array([[1000.0, 999.0, -5.0], [0.1, 0.2, 0.3]])
    probs = softmax(logits)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1)
    assert np.allclose(probs, torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    names = ["a", "b", "c"]
    labels = top_labels(probs[1], names, 2, explained=2)
    assert [(label.name, label.explained) for label in labels] == [("c", True), ("b", False)]
    labels = top_labels(probs[1], names, 1, explained=0)  # the explained class is added when not in the top k
    assert [(label.name, label.explained) for label in labels] == [("c", False), ("a", True)]
    assert labels[1].score == pytest.approx(probs[1, 0])
    # panels: every panel's class is explained, those outside the top k added after them, once
    labels = top_labels(probs[1], names, 2, explained=[2, 1])
    assert [(label.name, label.explained) for label in labels] == [("c", True), ("b", True)]
    labels = top_labels(probs[1], names, 1, explained=[2, 0, 0])
    assert [(label.name, label.explained) for label in labels] == [("c", True), ("a", True)]
