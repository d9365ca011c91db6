"""What a user says of a third-party graph's input (``--input-size``, ``--mean``, ...): a plain record, light to
import (the engine's options hold one; reading the graph needs ``onnx``, which loads only when a graph is read)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livecam.errors import LivecamError


@dataclass(frozen=True)
class InputOptions:
    """What the user said of the graph's input; None: not said (the graph's own, or an assumption)."""

    size: tuple[int, int] | None = None  # (height, width)
    mean: tuple[float, float, float] | None = None  # in the graph's channel order and units (see scale)
    std: tuple[float, float, float] | None = None
    scale: float | None = None  # the pixels' range before the mean: 1 ([0, 1]) or 255 ([0, 255])
    rgb: bool | None = None  # False: the graph takes BGR
    labels: Path | None = None  # a text file, one class name per line

    @property
    def given(self) -> list[str]:
        """The settings given, by name (for messages)."""
        names = ("input_size", "mean", "std", "scale", "rgb", "labels")
        values = (self.size, self.mean, self.std, self.scale, self.rgb, self.labels)
        return [name for name, value in zip(names, values, strict=True) if value is not None]

    def key(self) -> list[object]:
        """The options as part of the graph cache's key (the labels file by its identity)."""
        labels: list[object] | None = None
        if self.labels is not None:
            path = Path(self.labels).expanduser()
            if not path.is_file():
                raise LivecamError(f"there is no labels file {path}; give a text file with one class name per line")
            stat = path.stat()
            labels = [str(self.labels), stat.st_size, stat.st_mtime_ns]
        return [self.size, self.mean, self.std, self.scale, self.rgb, labels]
