"""The token and channels-last reshapes on their own, on sequences whose values say where each cell belongs.

A grid token at row i, column j, channel c of sample n holds 1000 i + j + c / 100 + 100000 n; the k-th prefix
token holds -(k + 1) - c / 100 - 100000 n. A transposed, shifted or mixed grid, or a prefix token left in the map,
gives other values. float64: every value is exact.
"""

from __future__ import annotations

import pytest
import torch

from livecam.cams import ActivationHook
from livecam.zoo.layout import NCHW, NHWC, TOKENS, Layout, detect_layout

GRID = (3, 5)  # not square: a transposed grid has another shape
CHANNELS = 4


def expected_map(n: int = 2, grid: tuple[int, int] = GRID, channels: int = CHANNELS) -> torch.Tensor:
    """(N, C, h, w): the value each cell must hold."""
    b, c, i, j = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in (n, channels, *grid)), indexing="ij")
    return 1000 * i + j + c / 100 + 100000 * b


def token_sequence(prefix: int, n: int = 2) -> torch.Tensor:
    """(N, prefix + h w, C): the prefix tokens, then the grid in row-major order."""
    grid = expected_map(n).permute(0, 2, 3, 1).reshape(n, -1, CHANNELS)
    k, c = torch.meshgrid(torch.arange(prefix, dtype=torch.float64), torch.arange(CHANNELS, dtype=torch.float64),
                          indexing="ij")
    front = -(k + 1) - c / 100 - 100000 * torch.arange(n, dtype=torch.float64)[:, None, None]
    return torch.cat([front, grid], dim=1)


@pytest.mark.parametrize("prefix", [1, 2, 5])
def test_to_map_drops_exactly_the_prefix_and_keeps_the_grid_in_place(prefix: int) -> None:
    out = token_sequence(prefix)
    layout = Layout(TOKENS, GRID, CHANNELS, prefix)
    feature_map = layout.to_map(out)
    assert feature_map.shape == (2, CHANNELS, *GRID)
    assert torch.equal(feature_map, expected_map())  # neither transposed nor shifted, no sample mixed
    assert bool((feature_map >= 0).all())  # no prefix token (all negative) is left in the map
    assert layout.describe() == f"tokens 3x5 + {prefix} prefix"


@pytest.mark.parametrize("prefix", [0, 1, 2, 5])
def test_from_map_gives_back_the_sequence_as_a_new_tensor(prefix: int) -> None:
    out = token_sequence(prefix)
    layout = Layout(TOKENS, GRID, CHANNELS, prefix)
    feature_map = layout.to_map(out)
    back = layout.from_map(feature_map, out)
    assert torch.equal(back, out)
    keep_map, keep_out = feature_map.clone(), out.clone()
    back.add_(1.0)  # what an in-place operation downstream would do
    assert torch.equal(feature_map, keep_map) and torch.equal(out, keep_out)


def test_channels_last_maps_read_and_write_the_same_cells() -> None:
    nchw = expected_map()
    nhwc = nchw.permute(0, 2, 3, 1).contiguous()
    layout = Layout(NHWC, GRID, CHANNELS)
    assert layout.describe() == "NHWC 3x5"
    feature_map = layout.to_map(nhwc)
    assert torch.equal(feature_map, nchw)
    back = layout.from_map(feature_map, nhwc)
    assert torch.equal(back, nhwc) and back.is_contiguous()
    back.add_(1.0)
    assert torch.equal(feature_map, nchw)
    plain = Layout(NCHW, GRID, CHANNELS)
    assert plain.describe() == "NCHW 3x5" and plain.to_map(nchw) is nchw
    copy = plain.from_map(nchw, nchw)
    copy.add_(1.0)
    assert torch.equal(nchw, expected_map())


@pytest.mark.parametrize(("shape", "patch_grid", "expected"), [
    ((1, 197, 384), (14, 14), Layout(TOKENS, (14, 14), 384, 1)),  # ViT-S: the class token
    ((1, 198, 384), (14, 14), Layout(TOKENS, (14, 14), 384, 2)),  # DeiT distilled: class and distillation tokens
    ((1, 7, 7, 768), (56, 56), Layout(NHWC, (7, 7), 768)),  # timm's Swin, last stage
    ((1, 768, 7, 7), None, Layout(NCHW, (7, 7), 768)),  # a CNN
    ((1, 49, 768), (56, 56), Layout(TOKENS, (7, 7), 768, 0)),  # a hierarchical model's downsampled token grid
    # the patch grid halved, with a class token: MViTv2 with a class token ends so (56x56 -> 7x7 + 1); by the
    # same rule 50 tokens on a 14x14 patch grid are read as 7x7 + 1, not refused
    ((1, 50, 768), (56, 56), Layout(TOKENS, (7, 7), 768, 1)),
    ((1, 50, 768), (14, 14), Layout(TOKENS, (7, 7), 768, 1)),
])
def test_detect_layout_on_the_shapes_of_real_models(shape, patch_grid, expected: Layout) -> None:
    assert detect_layout(shape, 1, (224, 224), patch_grid) == expected


@pytest.mark.parametrize(("shape", "batch", "patch_grid", "reason"), [
    ((64, 49, 288), 1, (56, 56), "its first axis is 64, not the batch of 1 (windows or heads, not images)"),
    ((1, 100, 768), 1, (14, 14), "its 100 tokens are not the patch grid 14x14 (or a downsampled one) plus up to 16 "
                                 "prefix tokens"),
    ((1, 1000), 1, (14, 14), "2 dimensions, not a (N, C, H, W) map or an (N, T, C) token sequence"),
])
def test_detect_layout_refuses_what_is_no_grid_and_says_why(shape, batch, patch_grid, reason: str) -> None:
    assert detect_layout(shape, batch, (224, 224), patch_grid) == reason


class ReadsTokens(torch.nn.Module):
    """A token layer, then a score that reads the prefix tokens and the grid with different weights."""

    def __init__(self, prefix: int, grid_weight: torch.Tensor, prefix_weight: torch.Tensor) -> None:
        super().__init__()
        self.prefix = prefix
        self.layer = torch.nn.Identity()
        self.grid_weight, self.prefix_weight = grid_weight, prefix_weight
        self.seen: torch.Tensor | None = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.layer(tokens)
        self.seen = out
        front, grid = out[:, :self.prefix], out[:, self.prefix:]
        return (front * self.prefix_weight).sum(dim=(1, 2)) + (grid * self.grid_weight).sum(dim=(1, 2))


def test_the_gradient_through_the_hook_reaches_the_grid_alone() -> None:
    prefix = 2
    out = token_sequence(prefix)
    layout = Layout(TOKENS, GRID, CHANNELS, prefix)
    gen = torch.Generator().manual_seed(0)
    grid_weight = torch.randn(GRID[0] * GRID[1], CHANNELS, generator=gen, dtype=torch.float64)
    prefix_weight = torch.randn(prefix, CHANNELS, generator=gen, dtype=torch.float64)
    model = ReadsTokens(prefix, grid_weight, prefix_weight)
    hook = ActivationHook(model.layer, needs_grad=True, layout=layout)
    hook.enabled = True
    score = model(out).sum()
    leaf = hook.activation
    assert leaf is not None and leaf.is_leaf and leaf.requires_grad and torch.equal(leaf, expected_map())
    assert torch.equal(model.seen, out)  # downstream runs on the layer's own values, prefix tokens included
    (grad,) = torch.autograd.grad(score, leaf)
    # d score / d map: the grid weight at each cell, in the map's layout; nothing of the prefix weight
    assert torch.equal(grad, grid_weight.reshape(1, *GRID, CHANNELS).permute(0, 3, 1, 2).expand_as(grad))
    model.grid_weight = torch.zeros_like(grid_weight)  # a score of the prefix tokens alone: no gradient on the map
    (grad,) = torch.autograd.grad(model(out).sum(), hook.activation, allow_unused=True)
    assert grad is None or not grad.any()
    hook.remove()
