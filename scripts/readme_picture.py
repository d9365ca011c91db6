"""Make docs/demo.jpg, the README's picture, from the demo's output video.

    make demo && .venv/bin/python scripts/readme_picture.py demo.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from livecam.sources.demo import SCENE_FRAMES
from livecam.sources import open_source

# (scene, frame within the scene): the cat crossing the wall, the espresso, the cup sliding, the motorcycle
PICKS = [(2, 24), (1, 30), (3, 30), (5, 20)]


def main(video: str, out: str = "docs/demo.jpg") -> None:
    with open_source(video) as src:
        frames = [frame.image for frame in src]
    tiles = [frames[scene * SCENE_FRAMES + i] for scene, i in PICKS]
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(out, grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main(*sys.argv[1:])
