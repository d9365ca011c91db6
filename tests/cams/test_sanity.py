"""The model-randomization sanity check (Adebayo et al. 2018) on the real EfficientNet-Lite0."""

from __future__ import annotations

import torch
from torch import nn

import livecam
from livecam.cams.metrics import cascade_randomization, cascade_stages, randomize_, spearman
from tests.conftest import photo_bgr

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]
# from the top: the classifier, the head convolution and its BatchNorm, then the blocks at 7x7
CASCADE = [["_fc"], ["_bn1", "_conv_head"], *[[f"_blocks.{i}"] for i in range(15, 10, -1)]]


def test_spearman_ranks_with_ties_and_takes_a_flat_map_as_uncorrelated() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    assert spearman(a, a * 7 + 1) == 1.0
    assert spearman(a, -a) == -1.0
    # ranks (1.5, 1.5, 3, 4) against (4, 3, 2, 1): rho = -0.9486...
    assert abs(spearman(a, torch.tensor([4.0, 3.0, 2.0, 1.0])) + 0.9486832980505138) < 1e-12
    assert spearman(a, torch.zeros(2, 2)) == 0.0


def test_cascade_order_and_fresh_weights(lite0) -> None:
    stages = cascade_stages(lite0.module)
    assert stages[:5] == ["_fc", "_bn1", "_conv_head", "_blocks.15", "_blocks.14"]
    assert stages[-3:] == ["_blocks.0", "_bn0", "_conv_stem"] and len(stages) == 16 + 5
    conv = nn.Conv2d(64, 256, 3)
    randomize_(conv, torch.Generator().manual_seed(0))
    assert abs(float(conv.weight.detach().std()) - (2 / (256 * 9)) ** 0.5) < 0.002 and not conv.bias.any()
    bn = nn.BatchNorm2d(8)
    bn.running_var.fill_(5.0)
    randomize_(bn, torch.Generator())
    assert bn.running_var.eq(1).all() and bn.weight.eq(1).all()


def test_gradcam_passes_the_randomization_check_and_guided_backprop_fails_it(lite0) -> None:
    x = livecam.to_input([photo_bgr(p) for p in PHOTOS], lite0.preprocess)
    before = {k: v.clone() for k, v in lite0.module.state_dict().items()}
    for seed in (0, 1):
        rows = cascade_randomization(lite0.module, x, ["gradcam", "guided"], CASCADE, seed=seed)
        # once the classifier and the head are random, and every block at 7x7 after them,
        # Grad-CAM's map no longer ranks the pixels as the trained model's did
        for stage, row in zip(CASCADE[1:], rows[1:], strict=True):
            assert max(row["gradcam"]) < 0.5, (seed, stage, row["gradcam"])
        # guided backprop barely changes: it shows the image's edges, not the model's decision
        for stage, row in zip(CASCADE, rows, strict=True):
            assert min(row["guided"]) > 0.8, (seed, stage, row["guided"])
    assert all(torch.equal(v, lite0.module.state_dict()[k]) for k, v in before.items())  # a copy was randomized
