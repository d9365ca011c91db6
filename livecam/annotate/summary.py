"""What a run shows while and after it works: the frames to expect (the progress bar) and the table of lines.

Both are text and numbers only; the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from livecam.annotate.job import Job
from livecam.annotate.manifest import Record


def frame_total(jobs: Iterable[Job]) -> int | None:
    """The frames the containers say they hold (for the progress bar); None when unknown."""
    import cv2

    total = 0
    for job in jobs:
        cap = cv2.VideoCapture(job.input)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        total += max(count, 0)
    return total or None


def summary_table(records: list[Record], base: Path | None = None) -> str:
    """Plain aligned text: one row per input (status, frames, FPS, top class, input, error); with ``--compare``
    the top class of each side, ``tabby (80) | tiger cat (75)``."""
    def shown(path: str) -> str:
        if base is not None:
            try:
                return str(Path(path).relative_to(base))
            except ValueError:
                pass
        return path

    rows = [("STATUS", "FRAMES", "FPS", "TOP CLASS", "INPUT", "ERROR")]
    for r in records:
        tops = [f"{top[0]['name']} ({top[0]['count']})" if top else "-"
                for top in (r.get("top_classes"), *([r["compare_top_classes"]] if "compare_top_classes" in r else []))]
        rows.append((r["status"], str(r.get("frames", 0)), f"{r['fps']:.1f}" if r.get("fps") else "-",
                     " | ".join(tops), shown(r["input"]), r.get("error") or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
