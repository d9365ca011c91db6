"""Records of a run beside the video: a JSON Lines log of every frame, and the raw maps as .npz files.

Both are sinks that the pipeline's writer thread runs (``main_thread`` is
False), so they never slow the engine. They read only what every engine gives:
the frame (index, timestamp, and the pipeline's decode time, drops and
latency), the labels, the per-stage timings and the maps.

The log (:class:`JsonlLog`) has one JSON object per line, per frame, in order::

    {"frame": 0, "time": 0.0, "labels": [{"index": 281, "name": "tabby", "score": 0.78, "explained": true}],
     "ms": {"decode": 1.2, "preprocess": 0.9, "explain": 9.8, "render": 1.1}, "latency_ms": 14.0, "dropped": 0}

With ``--smooth`` the labels are the smoothed ones, as drawn, and ``"raw"`` beside
them is the frame's own top class (``{"index": 282, "name": "tiger cat", "score": 0.51}``);
the saved maps add ``raw_maps`` and ``raw_map_classes``. Without smoothing a line and a
file are as they always were.

With live controls (the window's keys, the browser's buttons) the first frame, and
each first frame drawn with other view settings, also has ``"settings"``:
``{"method": "gradcam", "rank": 0, "panels": false, "alpha": 0.5, "colormap": "jet",
"smooth_s": 0.0}`` (:mod:`livecam.controls`); the frames after it were drawn with the same.

A frame the engine failed on is a line with ``"error"`` instead of labels and
timings. Each line is written with one system call, so a killed process leaves
only whole lines.
"""

from __future__ import annotations

import json
import math
import os
from io import FileIO
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np

from livecam.errors import LivecamError, RunError, option
from livecam.outputs import Output, check_output
from livecam.sinks.base import Sink
from livecam.sinks.encode import write_all
from livecam.types import Annotated, Frame

MAPS_PATTERN = "frame_{:06d}.npz"


class LabelRecord(TypedDict):
    """One of a frame's labels in the log."""

    index: int
    name: str
    score: float | None
    explained: bool


class RawRecord(TypedDict):
    """With ``--smooth``: the frame's own top class, before smoothing."""

    index: int
    name: str
    score: float | None


class CompareRecord(TypedDict):
    """With two models side by side (``--compare``): the second side's labels, explained classes and times."""

    labels: list[LabelRecord]
    explained: list[int]  # the class of each map drawn
    ms: dict[str, float | None]  # its own stages (the line's ``ms`` adds up both sides)


class _FrameFields(TypedDict):
    frame: int
    time: float | None
    labels: list[LabelRecord]  # with --smooth: the smoothed ones, as drawn
    ms: dict[str, float | None]
    latency_ms: float | None
    dropped: int
    settings: NotRequired[dict[str, Any]]  # live controls: on the first frame drawn with these view settings


class FrameRecord(_FrameFields, total=False):
    """The log's line for a processed frame; times in ms, None where a value is not finite (JSON has no NaN).
    ``compare`` only with two models side by side: the second side's (the line's labels are the first's)."""

    raw: RawRecord  # only with --smooth: the frame's own top class
    compare: CompareRecord


class FailureRecord(TypedDict):
    """The log's line for a frame the engine failed on."""

    frame: int
    time: float | None
    error: str
    dropped: int


def check_log_path(path: Path, overwrite: bool, source_path: Path | None = None) -> Path:
    """Refuse a log path that cannot be written or would replace the user's file without ``overwrite``."""
    return check_output(Output("log", path), [source_path] if source_path is not None else [], overwrite)


def _number(value: float, digits: int) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def _labels(annotated: Annotated) -> list[LabelRecord]:
    return [{"index": label.index, "name": label.name, "score": _number(label.score, 6),
             "explained": label.explained} for label in annotated.labels]


def frame_record(annotated: Annotated) -> FrameRecord:
    """The log's line for a processed frame (see the module's docstring)."""
    frame = annotated.frame
    ms = {"decode": frame.decode * 1000.0}
    ms.update({stage: seconds * 1000.0 for stage, seconds in annotated.timings.items()})
    record: FrameRecord = {
        "frame": frame.index,
        "time": _number(frame.timestamp, 6),
        "labels": _labels(annotated),
        "ms": {stage: _number(value, 3) for stage, value in ms.items()},
        "latency_ms": _number(frame.latency * 1000.0, 3),
        "dropped": frame.dropped,
    }
    if annotated.smoothed and annotated.raw_labels:
        top = annotated.raw_labels[0]
        record["raw"] = {"index": top.index, "name": top.name, "score": _number(top.score, 6)}
    if len(annotated.sides) > 1:
        second = annotated.sides[1]
        record["compare"] = {"labels": _labels(second), "explained": list(second.map_classes),
                             "ms": {stage: _number(s * 1000.0, 3) for stage, s in second.timings.items()}}
    if annotated.settings is not None:
        record["settings"] = {name: value for name, value in annotated.settings.items() if name != "paused"}
    return record


def failure_record(frame: Frame, message: str) -> FailureRecord:
    """The log's line for a frame the engine failed on."""
    return {"frame": frame.index, "time": _number(frame.timestamp, 6), "error": message, "dropped": frame.dropped}


class JsonlLog(Sink):
    """One JSON line per frame (see the module's docstring), each written whole and at once.

    Every line goes to the file with one ``write`` system call as soon as its
    frame arrives, so the file is never more than a frame behind, and a process
    killed at any moment leaves only complete lines. A full disk is a one-line
    :class:`RunError` naming the file (exit code 1).
    """

    main_thread = False

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False,
                 source_path: Path | None = None) -> None:
        self.path = check_log_path(Path(path), overwrite, source_path)
        self.overwrite = overwrite
        self._file: FileIO | None = None  # opened at the first line: a run that fails to start leaves no file behind
        self.lines = 0

    def _put(self, record: FrameRecord | FailureRecord) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            if self._file is None:
                self._file = open(self.path, "wb" if self.overwrite else "xb", buffering=0)  # noqa: SIM115
            write_all(self._file, data)
        except FileExistsError:
            raise LivecamError(f"{self.path} already exists; pass {option('overwrite')} to replace it, or choose "
                               f"another {option('log')}") from None
        except OSError as exc:
            raise RunError(f"cannot write the log {self.path} ({exc.strerror or exc}); the run stopped: "
                               f"free some space or choose another {option('log')}") from None
        self.lines += 1

    def write(self, annotated: Annotated) -> None:
        self._put(frame_record(annotated))

    def write_failure(self, frame: Frame, message: str) -> None:
        self._put(failure_record(frame, message))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def check_maps_folder(folder: Path, overwrite: bool) -> Path:
    """Refuse a maps folder that is a file, or that holds saved maps, without ``overwrite``."""
    check_output(Output("save_maps", folder, folder=True))
    if not overwrite and folder.is_dir() and any(folder.glob("frame_*.npz")):
        raise LivecamError(f"{folder} already holds saved maps (frame_*.npz); pass {option('overwrite')} to replace "
                           f"them, or choose another {option('save_maps')} folder")
    return folder


class MapsSaver(Sink):
    """The raw maps of every frame as ``DIR/frame_000123.npz`` (named by the frame's index).

    Each file holds ``maps`` (K, h, w) float32 in [0, 1] at the layer's
    resolution, ``map_classes`` (K,) the class of each map, ``classes`` and
    ``scores`` (the labels' class indices and probabilities, best first),
    ``frame`` and ``timestamp``; with ``--smooth``, ``maps`` and the labels are the smoothed ones, as
    drawn, and ``raw_maps`` and ``raw_map_classes`` the frame's own; with two models side by side, the second
    side's as ``compare_maps``, ``compare_map_classes``, ``compare_classes``
    and ``compare_scores``. A file is written beside its name and moved
    into place, so a killed run leaves no half-written file; without
    ``overwrite`` an existing file is never replaced.
    """

    main_thread = False

    def __init__(self, folder: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.folder = check_maps_folder(Path(folder), overwrite)
        self.overwrite = overwrite
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LivecamError(f"cannot create the folder {self.folder} ({exc.strerror or exc}); choose another "
                               f"{option('save_maps')}") from None
        self.files = 0

    def write(self, annotated: Annotated) -> None:
        frame = annotated.frame
        path = self.folder / MAPS_PATTERN.format(frame.index)
        if not self.overwrite and path.exists():
            raise LivecamError(f"{path} already exists; pass {option('overwrite')} to replace it, or choose another "
                               f"{option('save_maps')}")
        try:
            save_maps(path, annotated)
        except OSError as exc:
            raise RunError(f"cannot write {path} ({exc.strerror or exc}); the run stopped: free some space or "
                               f"choose another {option('save_maps')}") from None
        self.files += 1


def _arrays(annotated: Annotated, prefix: str = "") -> dict[str, np.ndarray]:
    """A frame's (or a side's) maps, their classes, and its labels' classes and scores, for its .npz file."""
    empty = np.zeros((0, 0, 0), np.float32)
    maps = annotated.maps if annotated.maps is not None else empty
    arrays: dict[str, np.ndarray] = {f"{prefix}maps": np.asarray(maps, np.float32),
                                     f"{prefix}map_classes": np.asarray(annotated.map_classes, np.int64),
                                     f"{prefix}classes": np.asarray([lb.index for lb in annotated.labels], np.int64),
                                     f"{prefix}scores": np.asarray([lb.score for lb in annotated.labels], np.float32)}
    if annotated.smoothed:  # --smooth: the frame's own maps beside the drawn ones
        raw = annotated.raw_maps if annotated.raw_maps is not None else empty
        arrays[f"{prefix}raw_maps"] = np.asarray(raw, np.float32)
        arrays[f"{prefix}raw_map_classes"] = np.asarray(annotated.raw_map_classes, np.int64)
    return arrays


def save_maps(path: Path, annotated: Annotated) -> None:
    """One frame's maps, classes and scores as ``path`` (.npz; see :class:`MapsSaver`), written beside it and
    moved into place; an OSError leaves nothing behind."""
    frame = annotated.frame
    arrays: dict[str, Any] = _arrays(annotated)  # np.savez's keywords, typed as its own (allow_pickle)
    if len(annotated.sides) > 1:
        arrays.update(_arrays(annotated.sides[1], "compare_"))
    arrays.update(frame=np.asarray(frame.index, np.int64), timestamp=np.asarray(frame.timestamp, np.float64))
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as file:
            np.savez(file, **arrays)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
