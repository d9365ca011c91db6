"""How steady explanations are over time: the arithmetic of ``livecam evaluate --stability``. No PyTorch.

A video explained frame by frame flickers: consecutive maps disagree, and the explained
class flips between near ties. Two numbers say how much, for a sequence of maps (each of its
frame's explained class, at the layer's resolution) and their classes:

- the correlation of each pair of consecutive maps, Pearson's r of their values and
  Spearman's rho of their ranks (ties get their average rank), summarized by the median and
  the 10th percentile (the flicker that shows);
- how often the explained class changes from one frame to the next (:func:`class_changes`).

:func:`summarize` gives both for one ``--smooth`` value; :mod:`livecam.cams.stability` makes
the maps (it explains the frames once and smooths them offline) and adds the deletion and
insertion AUC.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

P_LOW = 10  # the low percentile reported beside the median


def ranks(values: np.ndarray) -> np.ndarray:
    """The ranks (1 to n) of a flattened array, ties given the average of the ranks they span, as float64."""
    x = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]  # where each run of equal values begins
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(x)] - 1
    average = (first + last) / 2.0 + 1.0  # the mean rank of each run
    out = np.empty(len(x), dtype=np.float64)
    out[order] = average[group]
    return out


def map_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each pair of maps (N, ...), in float64; two flat maps correlate 1 when equal, else 0."""
    x: np.ndarray = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    equal = np.all(a.reshape(len(a), -1) == b.reshape(len(b), -1), axis=1)
    r = np.divide((x * y).sum(1), den, out=np.zeros(len(x)), where=den > 0)
    correlations: np.ndarray = np.where(den > 0, r, equal.astype(np.float64))
    return correlations


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two maps' values (flattened, in float64; :func:`map_correlations` of the pair).

    Two identical maps correlate 1, also where both are flat; a flat map and any other correlate 0
    (it ranks nothing), so the result is never NaN.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps of different sizes: {np.shape(a)} and {np.shape(b)}")
    if np.array_equal(x, y):
        return 1.0
    return float(np.clip(map_correlations(x[None], y[None])[0], -1.0, 1.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps: Pearson's r of their ranks (ties averaged); the same rules as :func:`pearson`."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"maps of different sizes: {np.shape(a)} and {np.shape(b)}")
    if np.array_equal(a, b):
        return 1.0
    return pearson(ranks(a), ranks(b))


def consecutive(maps: Sequence[np.ndarray], kind: str = "spearman") -> list[float]:
    """The correlation (``"spearman"`` or ``"pearson"``) of each pair of consecutive maps: n - 1 values."""
    correlate = {"spearman": spearman, "pearson": pearson}[kind]
    return [correlate(a, b) for a, b in itertools.pairwise(maps)]


def class_changes(classes: Sequence[int]) -> int:
    """How many times the class differs from the frame before."""
    return sum(1 for a, b in itertools.pairwise(classes) if int(a) != int(b))


@dataclass(frozen=True)
class Stability:
    """One ``--smooth`` value's steadiness over a video (the deletion and insertion AUC are filled in later)."""

    smooth: float  # the time constant, seconds
    frames: int
    pairs: int  # consecutive pairs: frames - 1
    class_changes: int
    changes_per_frame: float  # class_changes / pairs
    spearman_median: float
    spearman_p10: float
    pearson_median: float
    pearson_p10: float
    top1_share: float | None = None  # the share of frames whose shown class is their own most probable one
    deletion_auc: float | None = None  # mean over the measured frames (lower is better)
    insertion_auc: float | None = None  # (higher is better)
    auc_frames: int = 0


def summarize(smooth: float, maps: Sequence[np.ndarray], classes: Sequence[int],
              top1: Sequence[int] | None = None) -> Stability:
    """The steadiness of one sequence: each frame's map (of its explained class) and that class, in order;
    ``top1``, each frame's own most probable class, gives :attr:`Stability.top1_share`."""
    if len(maps) != len(classes) or (top1 is not None and len(top1) != len(classes)):
        raise ValueError(f"{len(maps)} maps, {len(classes)} classes and {len(top1 or classes)} top classes")
    if len(maps) < 2:
        raise ValueError("steadiness needs two frames or more")
    rho, r = consecutive(maps, "spearman"), consecutive(maps, "pearson")
    changes = class_changes(classes)
    return Stability(
        smooth=float(smooth), frames=len(maps), pairs=len(maps) - 1, class_changes=changes,
        changes_per_frame=changes / (len(maps) - 1),
        spearman_median=float(np.median(rho)), spearman_p10=float(np.percentile(rho, P_LOW)),
        pearson_median=float(np.median(r)), pearson_p10=float(np.percentile(r, P_LOW)),
        top1_share=None if top1 is None else sum(int(a) == int(b) for a, b in zip(classes, top1, strict=True))
        / len(classes),
    )


def table(rows: Sequence[Stability]) -> str:
    """The rows side by side, in Markdown: one column per ``--smooth`` value."""

    def auc(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.0f}%"

    counts = sorted({r.auc_frames for r in rows})
    auc_frames = "/".join(str(c) for c in counts) + (" frame" if counts == [1] else " frames")
    lines = [
        "| --smooth (s) | " + " | ".join(f"{r.smooth:g}" for r in rows) + " |",
        "| --- | " + " | ".join("---" for _ in rows) + " |",
        "| consecutive maps, Spearman median | " + " | ".join(f"{r.spearman_median:.3f}" for r in rows) + " |",
        f"| consecutive maps, Spearman {P_LOW}th pct | " + " | ".join(f"{r.spearman_p10:.3f}" for r in rows) + " |",
        "| consecutive maps, Pearson median | " + " | ".join(f"{r.pearson_median:.3f}" for r in rows) + " |",
        f"| consecutive maps, Pearson {P_LOW}th pct | " + " | ".join(f"{r.pearson_p10:.3f}" for r in rows) + " |",
        "| class changes | " + " | ".join(f"{r.class_changes} in {r.pairs}" for r in rows) + " |",
        "| class changes per frame | " + " | ".join(f"{r.changes_per_frame:.3f}" for r in rows) + " |",
        "| frames showing their top-1 class | " + " | ".join(share(r.top1_share) for r in rows) + " |",
        f"| deletion AUC (lower is better; {auc_frames}) | " + " | ".join(auc(r.deletion_auc) for r in rows) + " |",
        f"| insertion AUC (higher is better; {auc_frames}) | " + " | ".join(auc(r.insertion_auc) for r in rows)
        + " |",
    ]
    return "\n".join(lines) + "\n"
