"""The built-in demo clip: real photographs with camera motion, made at first use.

The photographs ship in scikit-image (``chelsea``, ``coffee``, ``rocket``,
``stereo_motorcycle``, ``astronaut`` and the ``brick`` wall). Each scene moves
the camera (pan, zoom) or moves an object across a background, so the heatmap
has something to follow. The clip is a pure function of those images: the same
frames every time, written once to the user's cache folder.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from livecam.errors import LivecamError, option
from livecam.paths import cache_dir
from livecam.sinks.video import write_frames

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 360
FPS = 24.0
SCENE_FRAMES = 48  # two seconds each
SCENES = 7  # cat pan, coffee zoom, cat walks, cup slides, rocket tilt, motorcycle pan, astronaut zoom-out
CLIP_VERSION = 1  # bump when the frames change, so caches are remade
PHOTOS = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket", "motorcycle": "stereo_motorcycle",
          "astronaut": "astronaut", "brick": "brick"}  # the scenes' names for scikit-image's photographs


def _rgb_to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., ::-1])


@functools.lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    try:
        import skimage.data as data
    except ImportError:
        raise LivecamError("the demo clip is made from scikit-image's photographs, and scikit-image is not "
                           f"installed: pip install scikit-image, or give {option('source')} a video") from None

    def photo(loader: str) -> np.ndarray:  # skimage.data's loaders have no annotations: each returns an array
        image = getattr(data, loader)()
        return _rgb_to_bgr(np.asarray(image[0] if isinstance(image, tuple) else image))  # a stereo pair: the left

    return {name: photo(loader) for name, loader in PHOTOS.items()}


def smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def camera_view(image: np.ndarray, center: tuple[float, float], zoom: float) -> np.ndarray:
    """The WIDTHxHEIGHT view of ``image`` centred on ``center`` (pixels).

    At zoom 1 the image just covers the frame; larger zooms in.
    """
    h, w = image.shape[:2]
    scale = zoom * max(WIDTH / w, HEIGHT / h)
    cx, cy = center
    matrix = np.array([[scale, 0, WIDTH / 2 - scale * cx], [0, scale, HEIGHT / 2 - scale * cy]], np.float32)
    return cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def paste(background: np.ndarray, obj: np.ndarray, x: int, y: int) -> np.ndarray:
    """``background`` with ``obj`` pasted with its top-left corner at (x, y), clipped."""
    out = background.copy()
    oh, ow = obj.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + ow, out.shape[1]), min(y + oh, out.shape[0])
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = obj[y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def _scenes(p: dict[str, np.ndarray]) -> list[Callable[[float], np.ndarray]]:
    cat, coffee, rocket, moto, astro = p["cat"], p["coffee"], p["rocket"], p["motorcycle"], p["astronaut"]
    wall = cv2.resize(p["brick"], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    wall = cv2.addWeighted(wall, 0.8, np.full_like(wall, (60, 90, 140)), 0.2, 0)  # warm it up a little
    small_cat = cv2.resize(cat, (225, 150), interpolation=cv2.INTER_AREA)
    small_cup = cv2.resize(coffee[40:360, 60:500], (275, 200), interpolation=cv2.INTER_AREA)

    def cat_pan(t: float) -> np.ndarray:  # pan across the cat, slowly zooming in
        s = smoothstep(t)
        return camera_view(cat, (200 + 50 * s, 150 - 10 * s), 1.15 + 0.25 * s)

    def coffee_zoom(t: float) -> np.ndarray:  # zoom into the espresso cup
        s = smoothstep(t)
        return camera_view(coffee, (300 - 40 * s, 200 - 10 * s), 1.0 + 0.9 * s)

    def cat_walks(t: float) -> np.ndarray:  # the cat crosses a brick wall, left to right
        x = int(-180 + (WIDTH - 60) * t)
        y = int(150 + 40 * np.sin(2 * np.pi * t))
        return paste(wall, small_cat, x, y)

    def cup_slides(t: float) -> np.ndarray:  # the cup slides along the wall, right to left, up
        x = int(WIDTH - 80 - (WIDTH - 40) * t)
        y = int(150 - 130 * t)
        return paste(wall, small_cup, x, y)

    def rocket_tilt(t: float) -> np.ndarray:  # tilt up the rocket
        s = smoothstep(t)
        return camera_view(rocket, (320 + 20 * s, 330 - 220 * s), 1.6 + 0.4 * s)

    def motorcycle_pan(t: float) -> np.ndarray:  # pan right to left along the motorcycle
        s = smoothstep(t)
        return camera_view(moto, (480 - 220 * s, 260), 1.3)

    def astronaut_zoom_out(t: float) -> np.ndarray:  # from the face out to the whole scene
        s = smoothstep(t)
        return camera_view(astro, (230 + 26 * s, 120 + 136 * s), 2.4 - 1.4 * s)

    scenes: list[Callable[[float], np.ndarray]] = [cat_pan, coffee_zoom, cat_walks, cup_slides, rocket_tilt,
                                                   motorcycle_pan, astronaut_zoom_out]
    assert len(scenes) == SCENES
    return scenes


def demo_frames() -> Iterator[np.ndarray]:
    """The clip's frames, BGR uint8 WIDTHxHEIGHT, deterministically."""
    for scene in _scenes(_photos()):
        for i in range(SCENE_FRAMES):
            yield scene(i / (SCENE_FRAMES - 1))


def frame_count() -> int:
    return SCENES * SCENE_FRAMES


def write_demo_clip(path: Path) -> Path:
    """Write the clip to ``path`` (mp4), atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".demo-", suffix=".mp4", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_frames(tmp, demo_frames(), FPS)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _is_complete(path: Path) -> bool:
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frame_count()
    finally:
        cap.release()


def demo_clip_location() -> Path:
    """Where the demo clip is cached (it may not be made yet)."""
    return cache_dir() / f"demo-v{CLIP_VERSION}.mp4"


def demo_clip_path() -> Path:
    """The cached demo clip, made first if it is missing or incomplete."""
    path = demo_clip_location()
    if path.is_file() and _is_complete(path):
        return path
    log.info("making the demo clip at %s", path)
    try:
        return write_demo_clip(path)
    except OSError as exc:
        raise LivecamError(
            f"could not write the demo clip to {path} ({exc}); set LIVECAM_CACHE_DIR to a writable folder"
        ) from None
