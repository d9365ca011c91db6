"""The charts of ``livecam bench --plot``: one report's per-frame times, or several reports side by side.

matplotlib is optional: it is imported only to draw, and its absence is one line
that says what to install. A chart is written whole or not at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from livecam.bench.report import BenchResult, Stat
from livecam.errors import LivecamError, RunError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _use_agg() -> None:
    """Draw into files (no display): matplotlib's Agg backend; refuse in one line without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise LivecamError("drawing a chart needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")


def _save_figure(fig: Figure, path: Path) -> None:
    """Save a chart whole or not at all (a partial file moved into place), then free it."""
    import matplotlib.pyplot as plt

    from livecam.outputs import replace_atomically

    try:
        with replace_atomically(path) as partial:
            fig.savefig(partial, dpi=110, format=path.suffix.lower().lstrip(".") or "png")
    except OSError as exc:
        raise RunError(f"could not write {path} ({exc.strerror or exc}); it is left as it was") from None
    finally:
        plt.close(fig)


def plot(result: BenchResult, path: Path) -> None:
    """A bar chart of the per-frame p50 times, with p90 and p99 marked (needs matplotlib)."""
    _use_agg()
    import matplotlib.pyplot as plt

    bars = {f"stage: {k}": v for k, v in result.stages.items() if v.n}
    for name, stat in (("step (frame in -> annotated out)", result.step), ("explanation", result.explanation),
                       ("plain inference", result.floor), ("peer (pytorch-grad-cam)", result.peer)):
        if stat is not None and stat.n:
            bars[name] = stat
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.4))
    names = list(bars)
    colours = ["#cc6677" if n.startswith("peer") else "#999999" if n.startswith("plain") else "#4477aa"
               for n in names]
    ax.barh(names, [bars[n].p50_ms for n in names], color=colours)
    ax.scatter([bars[n].p90_ms for n in names], names, marker="|", color="black", s=120, label="p90", zorder=3)
    ax.scatter([bars[n].p99_ms for n in names], names, marker="x", color="black", s=30, label="p99", zorder=3)
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame (bar: p50)")
    ax.legend(loc="best", fontsize=8)
    c = result.config
    ax.set_title(f"{c['model']} {c['method']} {c['precision']}, {c['frame_size'][0]}x{c['frame_size'][1]}, "
                 f"{c['runtime']}\n{result.machine['device']}: end to end {result.pipeline.get('fps', 0):.1f} FPS",
                 fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_compare(results: list[BenchResult], path: Path) -> None:
    """Side by side: each report's step latency (p50 bar, p90 and p99 marks) and its end-to-end FPS."""
    _use_agg()
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(results) + 1.8))
    names = [_wrap(r.title) for r in results]
    steps = [r.step or Stat.of([]) for r in results]
    left.barh(names, [s.p50_ms for s in steps], color="#4477aa")
    left.scatter([s.p90_ms for s in steps], names, marker="|", color="black", s=120, label="p90", zorder=3)
    left.scatter([s.p99_ms for s in steps], names, marker="x", color="black", s=30, label="p99", zorder=3)
    left.set_xlabel("step: frame in -> annotated frame out, ms (bar: p50)")
    left.legend(loc="best", fontsize=8)
    left.invert_yaxis()
    right.barh(names, [r.pipeline.get("fps", 0) for r in results], color="#228833")
    right.set_xlabel("end to end FPS (decode, explain, overlay, encode)")
    right.set_yticks([])
    right.invert_yaxis()
    fig.tight_layout()
    _save_figure(fig, path)


def _wrap(text: str, width: int = 28) -> str:
    return "\n".join(re.findall(rf".{{1,{width}}}(?:\s+|$)", text)) or text
