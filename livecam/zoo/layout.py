"""Where the grid is in a layer's output: (N, C, H, W) maps, (N, H, W, C) maps, or (N, T, C) token sequences.

Every CAM method works on a feature map A of shape (N, C, h, w). CNNs give one
directly. Vision transformers give a token sequence (N, T, C): a few prefix
tokens (the class token, DeiT's distillation token, registers) followed by the
h x w patch tokens in row-major order. Swin's stages in timm, and the inside of
ConvNeXt's blocks, give channels-last maps (N, H, W, C).

A :class:`Layout` says which of the three a layer's output is, and turns it into
the (N, C, h, w) map the methods take (:meth:`Layout.to_map`) and back
(:meth:`Layout.from_map`), so that no user writes a ``reshape_transform``.
:func:`detect_layout` works it out from the output's shape, the input's size and
the grid of the patch embedding (the first convolution on the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NCHW = "nchw"
NHWC = "nhwc"
TOKENS = "tokens"
MAX_PREFIX = 16  # class, distillation and register tokens: more than this and a sequence is not read as a grid
MAX_DOWNSAMPLE = 5  # token grids of hierarchical models: the patch grid halved up to 5 times


@dataclass(frozen=True)
class Layout:
    """The layout of one layer's output, and the grid of cells it holds.

    ``kind`` is ``"nchw"``, ``"nhwc"`` or ``"tokens"``; ``grid`` is (h, w);
    ``prefix`` is how many tokens precede the grid (tokens only); ``channels``
    is C.
    """

    kind: str
    grid: tuple[int, int]
    channels: int
    prefix: int = 0

    def describe(self) -> str:
        """For the header line and ``livecam layers``: 'tokens 14x14 + 1 prefix', 'NHWC 7x7', 'NCHW 7x7'."""
        h, w = self.grid
        if self.kind == TOKENS:
            return f"tokens {h}x{w} + {self.prefix} prefix" if self.prefix else f"tokens {h}x{w}"
        return f"{self.kind.upper()} {h}x{w}"

    def to_map(self, out: torch.Tensor) -> torch.Tensor:
        """The layer's output as (N, C, h, w): the prefix tokens dropped, nothing copied where a view will do."""
        if self.kind == NCHW:
            return out
        if self.kind == NHWC:
            return out.permute(0, 3, 1, 2)
        n, _, c = out.shape
        return out[:, self.prefix:].reshape(n, *self.grid, c).permute(0, 3, 1, 2)

    def from_map(self, feature_map: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """A new tensor in the layer's own layout holding ``feature_map`` (N, C, h, w), with ``out``'s prefix tokens.

        What the rest of the network runs on while an explanation's map is a
        leaf: always a fresh tensor, so that an in-place operation downstream
        cannot change the map.
        """
        if self.kind == NCHW:
            return feature_map.clone()
        if self.kind == NHWC:
            return feature_map.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
        n, c = feature_map.shape[:2]
        grid = feature_map.permute(0, 2, 3, 1).reshape(n, -1, c)
        return torch.cat([out[:, :self.prefix].detach(), grid], dim=1)


def _same_stride(cells: tuple[int, int], input_size: tuple[int, int]) -> bool:
    """Do ``cells`` (h, w) tile an input of ``input_size`` with about the same stride along both axes?"""
    (h, w), (height, width) = cells, input_size
    if not (1 <= h <= height and 1 <= w <= width):
        return False
    sy, sx = height / h, width / w
    return abs(sy - sx) <= 0.25 * max(sy, sx)


def token_grid(tokens: int, patch_grid: tuple[int, int] | None) -> tuple[tuple[int, int], int] | None:
    """The (h, w) grid and prefix count of a sequence of ``tokens``, or None when none fits.

    The grid is the patch embedding's (ViT, DeiT, BEiT, EVA), or that grid halved
    (the later stages of hierarchical models); the tokens before it, at most
    :data:`MAX_PREFIX`, are the prefix. Without a known patch grid, a square grid
    with the fewest prefix tokens is taken.
    """
    if patch_grid is not None:
        h, w = patch_grid
        for _ in range(MAX_DOWNSAMPLE + 1):
            if h * w >= 1 and 0 <= tokens - h * w <= MAX_PREFIX:
                return (h, w), tokens - h * w
            h, w = (h + 1) // 2, (w + 1) // 2
        return None
    for prefix in range(min(MAX_PREFIX, tokens - 1) + 1):
        side = round((tokens - prefix) ** 0.5)
        if side > 1 and side * side == tokens - prefix:
            return (side, side), prefix
    return None


def detect_layout(shape: tuple[int, ...], batch: int, input_size: tuple[int, int],
                  patch_grid: tuple[int, int] | None) -> Layout | str:
    """The layout of an output of ``shape`` for a probe batch of ``batch`` images of ``input_size`` (h, w).

    Returns a :class:`Layout`, or a string saying why the output has none
    (for ``livecam layers`` and the refusal of a ``layer``).
    """
    if len(shape) not in (3, 4):
        return f"{len(shape)} dimensions, not a (N, C, H, W) map or an (N, T, C) token sequence"
    if shape[0] != batch:
        return f"its first axis is {shape[0]}, not the batch of {batch} (windows or heads, not images)"
    if len(shape) == 4:
        _, a, b, c = shape
        if _same_stride((b, c), input_size):
            return Layout(NCHW, (b, c), a)
        if _same_stride((a, b), input_size):
            return Layout(NHWC, (a, b), c)
        return (f"neither (N, C, H, W) nor (N, H, W, C): no two of its axes tile the {input_size[0]}x{input_size[1]} "
                "input")
    tokens, channels = shape[1], shape[2]
    found = token_grid(tokens, patch_grid)
    if found is None:
        expected = f"the patch grid {patch_grid[0]}x{patch_grid[1]}" if patch_grid else "a square grid"
        return f"its {tokens} tokens are not {expected} (or a downsampled one) plus up to {MAX_PREFIX} prefix tokens"
    return Layout(TOKENS, found[0], channels, found[1])
