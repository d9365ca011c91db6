"""Faithfulness of a saliency map: does the model's score follow the pixels the map ranks highest?

- Deletion and insertion (Petsiuk et al. 2018, RISE, section 4.1): remove the most
  salient pixels first (replaced by the dataset mean, 0 after normalization), or
  insert them first into a blurred copy of the image, in ``steps`` equal steps;
  the area under the class probability curve. Lower deletion and higher
  insertion mean a more faithful map.
- Average Drop and Increase in Confidence (Chattopadhay et al. 2018, section 6.1):
  the image multiplied by its map (in pixel space, so dark is black) is
  classified again; Average Drop = mean of max(0, Y_c - O_c) / Y_c in percent,
  Increase in Confidence = the percentage of images with O_c > Y_c.

Every curve is one batched forward pass on the model's device.

It lives in ``livecam.cams.metrics``, beside the methods it measures (they run through the
explainer here, in PyTorch); ``livecam evaluate`` and ``scripts/sanity_check.py`` call it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livecam.cams.base import spatial_size

if TYPE_CHECKING:
    from livecam.zoo import LoadedModel


@dataclass(frozen=True)
class Faithfulness:
    deletion_auc: float
    insertion_auc: float
    average_drop: float  # percent
    increase_in_confidence: float  # percent


def gaussian_blur(x: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """A separable Gaussian blur of (N, C, H, W), reflect-padded (RISE's insertion canvas)."""
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-(t * t) / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def reveal_masks(saliency: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps + 1, H, W) booleans: step k holds the k/steps most salient pixels (ties by position)."""
    h, w = saliency.shape
    n = h * w
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    ranks = torch.empty(n, dtype=torch.long, device=saliency.device)
    ranks[order] = torch.arange(n, device=saliency.device)
    counts = torch.round(torch.linspace(0, n, steps + 1, device=saliency.device)).long()
    return ranks.view(1, h, w) < counts.view(-1, 1, 1)


def auc(curve: torch.Tensor) -> float:
    """Area under a curve sampled at equal steps over [0, 1] (trapezoid rule)."""
    return float(torch.trapezoid(curve.double(), dx=1.0 / (len(curve) - 1)))


@torch.no_grad()
def _probabilities(model: nn.Module, batch: torch.Tensor, cls: int, chunk: int) -> torch.Tensor:
    dtype = next(model.parameters()).dtype
    out = [torch.softmax(model(part.to(dtype)).float(), dim=1)[:, cls] for part in torch.split(batch, chunk)]
    return torch.cat(out)


def deletion_insertion(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, cls: int,
                       steps: int = 32, chunk: int = 33) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Deletion and insertion AUC of ``saliency`` (H, W) for one normalized image ``x`` (1, 3, H, W)."""
    masks = reveal_masks(saliency, steps)[:, None]  # (S + 1, 1, H, W)
    deleted = torch.where(masks, torch.zeros_like(x), x)
    inserted = torch.where(masks, x, gaussian_blur(x))
    deletion = _probabilities(model, deleted, cls, chunk)
    insertion = _probabilities(model, inserted, cls, chunk)
    return auc(deletion), auc(insertion), deletion, insertion


@torch.no_grad()
def drop_and_increase(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, classes: torch.Tensor,
                      mean: torch.Tensor, std: torch.Tensor) -> tuple[float, float]:
    """Average Drop and Increase in Confidence (percent) over a batch; maps (N, H, W) in [0, 1]."""
    dtype = next(model.parameters()).dtype
    before = torch.softmax(model(x.to(dtype)).float(), dim=1).gather(1, classes[:, None])[:, 0]
    pixels = x.float() * std + mean  # back to [0, 1] pixel space
    masked = (pixels * saliency[:, None].float() - mean) / std
    after = torch.softmax(model(masked.to(dtype)).float(), dim=1).gather(1, classes[:, None])[:, 0]
    drop = (torch.clamp(before - after, min=0) / before).mean() * 100
    increase = (after > before).float().mean() * 100
    return float(drop), float(increase)


def random_map(shape: tuple[int, int], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A baseline: smooth random saliency (7x7 noise upsampled), fixed by ``seed``."""
    noise = torch.rand(1, 1, 7, 7, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(noise, size=shape, mode="bilinear", align_corners=False)[0, 0].to(device)


def centre_map(shape: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """A baseline: a Gaussian at the centre (photographers' bias), sigma a quarter of each side."""
    h, w = shape
    ys = (torch.arange(h, dtype=torch.float32) - (h - 1) / 2) / (h / 4)
    xs = (torch.arange(w, dtype=torch.float32) - (w - 1) / 2) / (w / 4)
    return torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)).to(device)


BASELINES = ("random", "centre")


def evaluate(model: LoadedModel, images: list[np.ndarray], methods: list[str],
             steps: int = 32) -> dict[str, Faithfulness]:
    """Faithfulness of each method (and of the random and centre baselines) on BGR frames.

    ``model`` is a :class:`~livecam.zoo.LoadedModel`; each image is explained for
    its top-1 class. Returns the means over the images.
    """
    from livecam.engines.pytorch.engine import to_input
    from livecam.engines.pytorch.explainer import Explainer

    device = model.device
    x = to_input(images, model.preprocess, device)
    with torch.no_grad():
        classes = model.module(x).argmax(dim=1)
    mean = torch.tensor(model.preprocess.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocess.std, device=device).view(1, 3, 1, 1)
    size = spatial_size(x)
    rows: dict[str, Faithfulness] = {}
    for method in [*methods, *BASELINES]:
        if method == "random":
            maps = torch.stack([random_map(size, seed=i, device=device) for i in range(len(images))])
        elif method == "centre":
            maps = centre_map(size, device).expand(len(images), *size)
        else:
            with Explainer(model, method) as explainer:
                maps = explainer(x, classes=classes).cams
        curves = [deletion_insertion(model.module, x[i:i + 1], maps[i], int(classes[i]), steps)
                  for i in range(len(images))]
        drop, increase = drop_and_increase(model.module, x, maps, classes, mean, std)
        rows[method] = Faithfulness(
            deletion_auc=sum(c[0] for c in curves) / len(curves),
            insertion_auc=sum(c[1] for c in curves) / len(curves),
            average_drop=drop,
            increase_in_confidence=increase,
        )
    return rows


def table(rows: dict[str, Faithfulness]) -> str:
    """The faithfulness table in Markdown."""
    lines = [
        "| method | deletion AUC (lower is better) | insertion AUC (higher is better) "
        "| Average Drop % (lower) | Increase in Confidence % (higher) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        label = f"{name} (baseline)" if name in BASELINES else name
        lines.append(f"| {label} | {r.deletion_auc:.3f} | {r.insertion_auc:.3f} | {r.average_drop:.1f} "
                     f"| {r.increase_in_confidence:.1f} |")
    return "\n".join(lines) + "\n"


# --- The model-randomization sanity check (Adebayo et al. 2018, section 3.1) ---------------------


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps (ties get their average rank).

    A constant map ranks nothing, so its correlation with anything is taken as 0.
    """
    from scipy.stats import spearmanr

    x, y = a.detach().flatten().double().cpu().numpy(), b.detach().flatten().double().cpu().numpy()
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y)[0])


def cascade_stages(module: nn.Module) -> list[str]:
    """The model's top-level layers from the output back to the input: the order of a cascade.

    The module's children in reverse order of definition, a ModuleList or
    Sequential child expanded into its items, and only those with parameters
    (for EfficientNet-Lite0: ``_fc``, ``_bn1``, ``_conv_head``, ``_blocks.15``, ...,
    ``_bn0``, ``_conv_stem``).
    """
    names = []
    for name, child in module.named_children():
        if isinstance(child, nn.ModuleList | nn.Sequential):
            names += [f"{name}.{item}" for item, _ in child.named_children()]
        else:
            names.append(name)
    return [n for n in reversed(names) if any(True for _ in module.get_submodule(n).parameters())]


def randomize_(layer: nn.Module, generator: torch.Generator) -> None:
    """Re-initialize a layer in place with fresh random weights, as a model is before training.

    Convolutions: He normal with fan-out (the initialization of EfficientNet,
    MobileNet and ResNet); Linear: uniform in +-1/sqrt(out_features), bias 0;
    BatchNorm: scale 1, shift 0, running mean 0 and variance 1.
    """
    with torch.no_grad():
        for m in layer.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                bound = m.out_features ** -0.5
                m.weight.copy_((torch.rand(m.weight.shape, generator=generator) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                if m.track_running_stats and m.running_mean is not None and m.running_var is not None:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)


def cascade_randomization(module: nn.Module, x: torch.Tensor, methods: list[str], stages: list[list[str]],
                          seed: int = 0, layer: str | None = None) -> list[dict[str, list[float]]]:
    """Adebayo et al.'s cascading randomization: does the map change when the model does?

    A copy of ``module`` is randomized stage by stage from the top (each stage a
    list of layer names, see ``cascade_stages``), and after each stage every
    method explains ``x`` again, for the classes the trained model predicted.
    Returns, per stage, each method's Spearman rank correlation with its map on
    the trained model, one value per image (maps at the input's resolution). A
    method that explains the model should fall towards 0; one that does not
    (an edge detector) stays high.
    """
    from livecam.engines.pytorch.explainer import Explainer

    model = copy.deepcopy(module).eval()
    gen = torch.Generator().manual_seed(seed)

    def maps(method: str, classes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        with Explainer(model, method, layer=layer, input_size=spatial_size(x)) as explainer:
            result = explainer(x, classes=classes)
        return result.raw if result.raw.shape[-2:] == x.shape[-2:] else result.cams, result.classes

    original = {}
    classes = None
    for method in methods:
        original[method], classes = maps(method, classes)
    results = []
    for stage in stages:
        for name in stage:
            randomize_(model.get_submodule(name), gen)
        row = {}
        for method in methods:
            current, _ = maps(method, classes)
            row[method] = [spearman(a, b) for a, b in zip(original[method], current, strict=True)]
        results.append(row)
    return results
