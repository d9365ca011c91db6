"""Faithfulness metrics: the pieces against hand-made cases, and Grad-CAM against the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
from click.testing import CliRunner

import livecam
from livecam.cli import main
from livecam.cams.metrics import auc, drop_and_increase, evaluate, gaussian_blur, reveal_masks
from tests.conftest import cat_on_background, photo_bgr


def test_reveal_masks_follow_the_saliency_order() -> None:
    saliency = torch.tensor([[0.1, 0.9], [0.5, 0.3]])
    masks = reveal_masks(saliency, steps=4)
    assert masks.shape == (5, 2, 2)
    assert [int(m.sum()) for m in masks] == [0, 1, 2, 3, 4]
    assert masks[1].tolist() == [[False, True], [False, False]]
    assert masks[2].tolist() == [[False, True], [True, False]]


def test_auc_is_the_trapezoid_over_the_unit_interval() -> None:
    assert auc(torch.linspace(0, 1, 11)) == pytest.approx(0.5)
    assert auc(torch.ones(5)) == pytest.approx(1.0)


def test_blur_keeps_flat_images_and_smooths_edges() -> None:
    flat = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(gaussian_blur(flat), flat, atol=1e-6)
    step = torch.zeros(1, 1, 20, 40)
    step[..., 20:] = 1.0
    blurred = gaussian_blur(step, sigma=2.0)
    assert blurred.shape == step.shape and 0.3 < float(blurred[0, 0, 10, 20]) < 0.7


def test_a_map_of_ones_drops_nothing(lite0) -> None:
    x = livecam.to_input([photo_bgr("coffee"), photo_bgr("chelsea")], lite0.preprocess)
    classes = lite0.module(x).argmax(1)
    mean = torch.tensor(lite0.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(lite0.preprocess.std).view(1, 3, 1, 1)
    drop, _ = drop_and_increase(lite0.module, x, torch.ones(2, 224, 224), classes, mean, std)
    assert drop < 1e-3
    drop, increase = drop_and_increase(lite0.module, x, torch.zeros(2, 224, 224), classes, mean, std)
    assert drop > 50 and increase == 0  # a black image loses the class


def test_gradcam_is_more_faithful_than_random_and_centre_maps(lite0, chelsea_bgr, coffee_bgr) -> None:
    """Real photographs, pasted off-centre so that the centre prior is not the answer by luck."""
    cat = cv2.resize(chelsea_bgr, (240, 160), interpolation=cv2.INTER_AREA)
    cup = cv2.resize(coffee_bgr, (240, 160), interpolation=cv2.INTER_AREA)
    images = [cat_on_background(cat, (480, 640), (0, 0)), cat_on_background(cat, (480, 640), (400, 320)),
              cat_on_background(cup, (480, 640), (400, 0)), cat_on_background(cup, (480, 640), (0, 320)),
              chelsea_bgr, coffee_bgr]
    rows = evaluate(lite0, images, ["gradcam"], steps=16)
    for baseline in ("random", "centre"):
        assert rows["gradcam"].deletion_auc < rows[baseline].deletion_auc
        assert rows["gradcam"].insertion_auc > rows[baseline].insertion_auc
        assert rows["gradcam"].average_drop < rows[baseline].average_drop


@pytest.mark.usefixtures("one_torch_thread")
def test_counterfactual_and_finercam_are_measured_and_the_evidence_against_loses_the_class(lite0) -> None:
    """The photograph kept only where the counterfactual map is (what speaks against the class) loses the class
    more than where Grad-CAM's is; Finer-CAM's row is measured like any other method's."""
    rows = evaluate(lite0, [photo_bgr("chelsea")], ["gradcam", "counterfactual", "finercam"], steps=4)
    assert set(rows) == {"gradcam", "counterfactual", "finercam", "random", "centre"}
    assert all(0 <= v <= 100 for row in rows.values() for v in vars(row).values())
    assert rows["counterfactual"].average_drop > rows["gradcam"].average_drop + 20


def test_evaluate_command(tmp_path: Path) -> None:
    out = tmp_path / "faithfulness.json"
    result = CliRunner().invoke(main, ["evaluate", "--frames", "2", "--steps", "4", "--methods",
                                       "gradcam,eigencam", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| gradcam |" in result.stdout and "| random (baseline) |" in result.stdout
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"gradcam", "eigencam", "random", "centre"} and data["frames"] == 2
    bad = CliRunner().invoke(main, ["evaluate", "--methods", "gradcam,gradcma"])
    assert bad.exit_code == 2 and "unknown method 'gradcma'" in bad.stderr
